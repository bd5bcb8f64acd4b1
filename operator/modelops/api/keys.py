"""The annotation and label keys of the API: one place for each name that people, the plugin and the operator share.

Users and ``kubectl modelops`` write the request annotations (approve, action); the operator and
its webhooks write the records (approvals, created-by); every object the operator makes for a
model carries the model label. The operator, the plugin and the pure logic all import them from
here (``modelops.api`` imports nothing of theirs).
"""

from __future__ import annotations

from typing import Final

from modelops.api.common import GROUP

# Asked for by people (``kubectl annotate`` or ``kubectl modelops``).
APPROVE: Final = f"{GROUP}/approve"
REVIEWER: Final = f"{GROUP}/reviewer"
ACTION: Final = f"{GROUP}/action"  # promote, abort or rollback a ModelDeployment's rollout
# Set to the version's own name before deleting a version that was ever in Production (docs/governance.md).
ACKNOWLEDGE_DELETE: Final = f"{GROUP}/acknowledge-delete"

# Written by the operator and its admission webhooks only.
APPROVALS: Final = f"{GROUP}/approvals"
CREATED_BY: Final = f"{GROUP}/created-by"
# Who asked for the current spec.stage, and when: {"user", "stage", "at"}, written by the webhook.
STAGE_REQUESTED_BY: Final = f"{GROUP}/stage-requested-by"

# On every object made for a model: its TrainingRun's Job and pods, a ModelDeployment's children.
MODEL_LABEL: Final = f"{GROUP}/model"
