-- An analysis that failed rolled the canary back: the stable version still serves, but the
-- rollout the commit asked for did not happen.
if conditions.Degraded ~= nil and conditions.Degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(conditions.Degraded)
  return hs
end
if obj.status.phase == "Degraded" or obj.status.phase == "RolledBack" then
  hs.status = "Degraded"
  hs.message = "Rollout " .. obj.status.phase
  return hs
end
-- A canary step with a pause and no duration waits for `kubectl modelops promote`; a paused
-- rollout is unfinished whatever Ready says of the stable version.
if obj.status.phase == "Paused" then
  hs.status = "Suspended"
  hs.message = "Rollout paused"
  if obj.status.canaryWeight ~= nil then
    hs.message = hs.message .. " at canary weight " .. tostring(obj.status.canaryWeight)
  end
  return hs
end
