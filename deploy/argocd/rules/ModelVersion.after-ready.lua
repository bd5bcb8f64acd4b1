-- Waiting for people, not for the operator: a stage that needs approvals.
if conditions.Approved ~= nil and conditions.Approved.status == "False" then
  hs.status = "Suspended"
  hs.message = describe(conditions.Approved)
  return hs
end
if conditions.Ready ~= nil and conditions.Ready.status == "False" and conditions.Ready.reason == "AwaitingApproval" then
  hs.status = "Suspended"
  hs.message = describe(conditions.Ready)
  return hs
end
