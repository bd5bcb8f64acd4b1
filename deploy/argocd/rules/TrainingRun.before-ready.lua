-- A failed run stays failed until its spec changes.
if obj.status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = "Training failed"
  if conditions.Ready ~= nil then
    hs.message = describe(conditions.Ready)
  end
  return hs
end
