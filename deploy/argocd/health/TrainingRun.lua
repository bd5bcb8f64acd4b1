-- Argo CD health of a modelops.io/v1alpha1 TrainingRun (resource.customizations.health.modelops.io_TrainingRun).
-- Reads only what the operator writes for every kind: status.observedGeneration and the
-- standard conditions (Ready as the summary, Reconciling/Stalled as kstatus reads them).
hs = {}
hs.status = "Progressing"
hs.message = "Waiting for the modelops operator"
if obj.status == nil then
  return hs
end
local function describe(condition)
  local text = condition.type .. "=" .. tostring(condition.status)
  if condition.reason ~= nil and condition.reason ~= "" then
    text = text .. " (" .. condition.reason .. ")"
  end
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end
-- A spec the operator has not seen yet says nothing about health.
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end
local conditions = {}
if obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    conditions[condition.type] = condition
  end
end
if conditions.Stalled ~= nil and conditions.Stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(conditions.Stalled)
  return hs
end
-- A failed run stays failed until its spec changes.
if obj.status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = "Training failed"
  if conditions.Ready ~= nil then
    hs.message = describe(conditions.Ready)
  end
  return hs
end
if conditions.Ready ~= nil and conditions.Ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(conditions.Ready)
  return hs
end
if conditions.Ready ~= nil then
  hs.message = describe(conditions.Ready)
elseif conditions.Reconciling ~= nil then
  hs.message = describe(conditions.Reconciling)
end
return hs
