"""``kubectl modelops``: the pipeline of a model at a glance, and the governance verbs.

Commands: ``status``, ``approve``, ``promote``, ``abort``, ``retry``, ``history``, ``card``, ``audit``
(see docs/kubectl-modelops.md). Exit codes: 0 ok, 1 an API error or a missing object,
2 bad usage. The plugin never sends a user name: approvals are recorded by the operator's
admission webhook from the identity the API server authenticated.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, get_args

from modelops.api.keys import ACTION, APPROVALS, APPROVE, REVIEWER
from modelops.api.modelversion import MAX_TRUSTED_ECE, Stage
from modelops.logic import audit
from modelops.plugin import card as cardpage
from modelops.plugin import client as kube
from modelops.plugin import render, views

STAGES: tuple[str, ...] = get_args(Stage)
APPROVABLE = ("Staging", "Production")
OUTPUTS = ("table", "json", "yaml")

# kind prefixes accepted before a name, kubectl style: `mv/iris-v3`, `mdep/iris`, `model/iris`
VERSION_PREFIXES = {"mv", "modelversion", "modelversions"}
DEPLOYMENT_PREFIXES = {"mdep", "modeldeployment", "modeldeployments"}
MODEL_PREFIXES = {"model"}


class UsageError(Exception):
    """The command line cannot be acted on (exit code 2)."""


class CommandError(Exception):
    """An error to report in one line, with optional hints (exit code 1)."""

    def __init__(self, message: str, hints: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.hints = list(hints)


# --- arguments -------------------------------------------------------------------------------


def _global_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # The flags work before and after the command; on subcommands their defaults are
    # suppressed so a flag given before the command is not reset by the subparser.
    default: Any = None if top else argparse.SUPPRESS
    parser.add_argument(
        "-n", "--namespace", default=default, help="namespace (default: the kubeconfig context's, else 'default')"
    )
    parser.add_argument(
        "-A", "--all-namespaces", action="store_true", default=False if top else argparse.SUPPRESS,
        help="list across all namespaces, ignoring -n (commands that list: status)",
    )
    parser.add_argument(
        "--kubeconfig", default=default,
        help="kubeconfig file, used alone (default: $KUBECONFIG's files merged, else ~/.kube/config, else in-cluster)",
    )
    parser.add_argument("--context", default=default, help="kubeconfig context (default: the current context)")
    parser.add_argument(
        "-o", "--output", choices=OUTPUTS, default="table" if top else argparse.SUPPRESS,
        help="output format (default: table)",
    )


class _Parser(argparse.ArgumentParser):
    """Bad usage is one line and where to look, as kubectl says it (not argparse's usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\nhint: run '{self.prog} --help' for usage\n")


def parser() -> argparse.ArgumentParser:
    top = _Parser(
        prog="kubectl modelops",
        description="The modelops pipeline of a model: training runs, versions, deployments, drift; and governance.",
        epilog="Exit codes: 0 ok, 1 API error or not found, 2 usage. See docs/kubectl-modelops.md.",
    )
    _global_flags(top, top=True)
    commands = top.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        _global_flags(sub, top=False)
        return sub

    sub = command("status", "the whole pipeline of a model at a glance")
    sub.add_argument("model", metavar="MODEL")

    sub = command("approve", "approve a ModelVersion for a stage, as your authenticated identity")
    sub.add_argument("version", metavar="VERSION")
    sub.add_argument("--stage", choices=APPROVABLE, default="Production", help="stage to approve (default: Production)")
    sub.add_argument("--reviewer", help="reviewer to record beside you (trusted GitOps appliers only)")

    sub = command(
        "promote",
        "with --stage: ask a ModelVersion for a stage; without: promote a ModelDeployment's paused canary",
    )
    sub.add_argument("target", metavar="VERSION|DEPLOYMENT", help="name, or mv/NAME, mdep/NAME")
    sub.add_argument(
        "--stage", choices=STAGES, help="the stage to ask for (makes the target a ModelVersion; default: none)"
    )

    for verb, text in (("abort", "abort a ModelDeployment's rollout"), ("retry", "retry an aborted rollout")):
        sub = command(verb, text)
        sub.add_argument("target", metavar="DEPLOYMENT", help="name or mdep/NAME")

    sub = command("history", "stage transitions, approvals and rejections of a version or of a model")
    sub.add_argument("target", metavar="VERSION|MODEL", help="name, or mv/NAME, model/NAME")

    sub = command("audit", "the governance trail of all a model's versions (JSON with -o json; else Markdown)")
    sub.add_argument("model", metavar="MODEL")

    sub = command("card", "a model card in Markdown (or a self-contained HTML page), from what the resources hold")
    sub.add_argument("target", metavar="MODEL|VERSION", help="name, or mv/NAME, model/NAME")
    sub.add_argument(
        "--html", action="store_true", help="a self-contained HTML page (inline SVG charts, fetches nothing)"
    )
    return top


def split_target(text: str, allowed: Mapping[str, set[str]]) -> tuple[str | None, str]:
    """``mv/iris-v3`` → ('version', 'iris-v3'); a bare name → (None, name)."""
    if "/" not in text:
        return None, text
    prefix, _, name = text.partition("/")
    for kind, prefixes in allowed.items():
        if prefix.lower() in prefixes and name:
            return kind, name
    choices = ", ".join(sorted(p for prefixes in allowed.values() for p in prefixes))
    raise UsageError(f"cannot tell what {text!r} names: use a bare name or one of the prefixes {choices}")


# --- context ---------------------------------------------------------------------------------


# Commands that list, and so may list across namespaces (-A); the others act on one named object.
LISTING = frozenset({"status"})


class Context:
    """The parsed flags, the client (made on first use) and the output streams."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.output: str = args.output
        self.all_namespaces: bool = bool(args.all_namespaces)
        if self.all_namespaces and args.command not in LISTING:
            # kubectl's own answer to `get NAME -A`: a name needs one namespace.
            raise UsageError(
                f"-A lists across namespaces; {args.command} acts on one object: name its namespace with -n"
            )
        self._client: kube.Client | None = None

    @property
    def client(self) -> kube.Client:
        if self._client is None:
            creds = kube.load_credentials(self.args.kubeconfig, self.args.context)
            # As kubectl: -A wins over -n; else -n, else the context's namespace, else "default".
            namespace = self.args.namespace or creds.namespace or "default"
            self._client = kube.Client(creds.connection(), namespace, all_namespaces=self.all_namespaces)
        return self._client

    @property
    def namespace(self) -> str:
        return self.client.namespace

    @property
    def colour(self) -> bool:
        return render.use_colour(sys.stdout)

    def emit(self, data: Any, text: Callable[[], str]) -> None:
        """The view as JSON/YAML when asked for, else its text rendering."""
        print(render.dump(data, self.output) if self.output in ("json", "yaml") else text())


# --- status ----------------------------------------------------------------------------------


def _metrics(values: Any, limit: int = 3) -> str:
    if not isinstance(values, Mapping) or not values:
        return "-"
    items = sorted(values.items())
    shown = " ".join(f"{k}={render.cell(v)}" for k, v in items[:limit])
    return shown + (f" +{len(items) - limit}" if len(items) > limit else "")


def _evidence(values: Mapping[str, Any], count: Any, unit: str) -> str:
    """Figures with the count behind them: 'accuracy=0.95 macroF1=0.94 (1200 labels)'; '-' without any."""
    if not values:
        return "-" if count is None else f"({count:.0f} {unit})"
    return f"{_metrics(values, limit=4)} ({(count or 0):.0f} {unit})"


def _untrusted(row: Mapping[str, Any]) -> str:
    """A warning beside an estimate made from probabilities that training found poorly calibrated."""
    if row.get("estimateTrusted") is not False:
        return ""
    ece = row["training"].get("ece")
    if isinstance(ece, int | float) and ece > MAX_TRUSTED_ECE:
        return f" (untrusted: training ece={ece:.3g} > {MAX_TRUSTED_ECE})"
    return " (untrusted: the version's EstimateTrusted condition is False)"  # the operator said so otherwise


def status_text(view: Mapping[str, Any], colour: bool) -> str:
    def section(title: str, headers: list[str], rows: list[list[Any]]) -> list[str]:
        body = render.table(headers, rows, colour=colour) if rows else "(none)"
        return ["", render.heading(title, colour), body]

    lines = [f"Model {view['model']} in namespace {view['namespace']}"]
    lines += section(
        "TRAININGRUNS",
        ["NAME", "PHASE", "PROGRESS", "VERSION", "METRICS"],
        [
            [r["name"], r["phase"], r["progress"], r["modelVersion"], _metrics(r["metrics"])]
            for r in view["trainingRuns"]
        ],
    )
    lines += section(
        "MODELVERSIONS",
        ["NAME", "VERSION", "ASKED", "GRANTED", "FORMAT", "READY", "METRICS"],
        [
            [v["name"], v["version"], v["askedStage"], v["grantedStage"], v["format"], v["ready"],
             _metrics(v["metrics"])]
            for v in view["modelVersions"]
        ],
    )
    lines += section(
        "MODELDEPLOYMENTS",
        ["NAME", "SOURCE", "DESIRED", "SERVING", "PHASE", "CANARY", "WEIGHT", "STEP"],
        [
            [
                d["name"],
                d["source"],
                d["desiredVersion"],
                d["servingVersion"],
                d["phase"],
                d["canaryVersion"],
                f"{d['canaryWeight']}%" if d["canaryVersion"] else None,
                d["step"],
            ]
            for d in view["modelDeployments"]
        ],
    )
    lines += section(
        "DRIFTPOLICIES",
        ["NAME", "DEPLOYMENT", "METHOD", "DRIFTED", "FEATURES", "LAST-EVALUATION", "RETRAINS"],
        [
            [
                p["name"],
                p["deployment"],
                p["method"],
                p["drifted"],
                p["driftedFeatures"],
                p["lastEvaluation"],
                p["retrains"],
            ]
            for p in view["driftPolicies"]
        ],
    )
    lines += section(
        "LIVE FAIRNESS",
        ["POLICY", "FEATURE", "METRIC", "GAP", "MAX", "SMALLEST-GROUP", "DEGRADED"],
        [
            [p["name"], f["feature"], f["metric"], f["value"], f["max"], f["evidence"], f["degraded"]]
            for p in view["driftPolicies"]
            for f in p.get("fairness") or []
        ],
    )
    lines += section(
        "LIVE QUALITY",
        ["DEPLOYMENT", "VERSION", "ROLE", "WINDOW", "LIVE", "ESTIMATED", "TRAINING"],
        [
            [q["deployment"], q["version"], q["role"], q["window"], _evidence(q["live"], q["labels"], "labels"),
             _evidence(q["estimated"], q["predictions"], "rows") + _untrusted(q), _metrics(q["training"], limit=5)]
            for q in view.get("quality") or []
        ],
    )
    return "\n".join(lines)


def cmd_status(ctx: Context) -> int:
    model: str = ctx.args.model
    c = ctx.client
    lists = [c.list(kind) for kind in (kube.TRAINING_RUN, kube.MODEL_VERSION, kube.MODEL_DEPLOYMENT, kube.DRIFT_POLICY)]
    if not ctx.all_namespaces:
        view = views.model_status(model, ctx.namespace, *lists)
        if views.is_empty_status(view):
            raise CommandError(
                f"model {model} has no TrainingRuns, ModelVersions or ModelDeployments in namespace {c.namespace}"
            )
        ctx.emit(view, lambda: status_text(view, ctx.colour))
        return 0
    # -A: one view per namespace the model lives in, as its objects link by name only inside one.
    found_views = []
    for namespace in sorted({views.dig(obj, "metadata.namespace") or "" for found in lists for obj in found}):
        here = [[obj for obj in found if views.dig(obj, "metadata.namespace") == namespace] for found in lists]
        view = views.model_status(model, namespace, *here)
        if not views.is_empty_status(view):
            found_views.append(view)
    if not found_views:
        raise CommandError(f"model {model} has no TrainingRuns, ModelVersions or ModelDeployments in any namespace")
    ctx.emit(found_views, lambda: "\n\n".join(status_text(view, ctx.colour) for view in found_views))
    return 0


# --- approve ---------------------------------------------------------------------------------


def _approval_records(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    # the annotation key holds dots, so it is read directly rather than through views.dig's dotted path
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(APPROVALS)
    try:
        records = json.loads(raw) if raw else []
    except ValueError:
        return []
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def _denied(action: str, error: kube.ApiError, hints: Sequence[str]) -> CommandError:
    text = f"the API server denied {action} ({error.status} {error.reason}): {error.message}"
    return CommandError(text, hints)


def _auth_hints(error: kube.ApiError) -> list[str]:
    if error.status == 401:
        return ["the API server did not accept your credentials: check --kubeconfig and --context"]
    return []


def cmd_approve(ctx: Context) -> int:
    name, stage, reviewer = ctx.args.version, ctx.args.stage, ctx.args.reviewer
    _, name = split_target(name, {"version": VERSION_PREFIXES})
    c = ctx.client
    before = c.get(kube.MODEL_VERSION, name)
    annotations: dict[str, str | None] = {APPROVE: stage}
    existing = views.dig(before, "metadata.annotations", {})
    if reviewer:
        annotations[REVIEWER] = reviewer
    elif REVIEWER in existing:
        # a reviewer left by an earlier GitOps apply is not this person's to assert
        annotations[REVIEWER] = None
    try:
        after = c.patch(kube.MODEL_VERSION, name, {"metadata": {"annotations": annotations}})
    except kube.ApiError as error:
        hints = _auth_hints(error)
        if error.status == 403:
            hints.append(
                "approving needs the 'approve' verb on modelversions.modelops.io: ask a cluster admin to bind you "
                f"to the modelops-approver ClusterRole (kubectl create rolebinding ... --clusterrole=modelops-approver "
                f"-n {c.namespace})"
            )
        if reviewer and error.status in (400, 403, 422):
            hints.append("only the policy's trustedAppliers may assert --reviewer; drop it to approve as yourself")
        elif error.status in (400, 422):
            hints.append(
                "the operator's admission webhook refused it: see docs/governance.md (four eyes: the creator of a "
                "version or of its TrainingRun may not approve it)"
            )
        raise _denied(f"the approval of {name} for {stage}", error, hints) from None
    known = {json.dumps(r, sort_keys=True) for r in _approval_records(before)}
    recorded = [
        r for r in _approval_records(after) if json.dumps(r, sort_keys=True) not in known and r.get("stage") == stage
    ]
    result = {
        "kind": "ModelVersion",
        "name": name,
        "namespace": c.namespace,
        "annotations": {k: v for k, v in annotations.items() if v is not None},
        "recorded": recorded,
        "grantedStage": views.dig(after, "status.stage", "None"),
    }

    def text() -> str:
        lines = [f"modelversion {name}: approval of {stage} requested"]
        for record in recorded:
            who = record.get("user")
            extra = f", reviewer {record['reviewer']}" if record.get("reviewer") else ""
            lines.append(f"  recorded: {record.get('stage')} approved by {who} at {record.get('at')}{extra}")
        if not recorded:
            lines.append(
                "  the operator's admission webhook records it with your authenticated identity; "
                f"see: kubectl modelops history {name} -n {c.namespace}"
            )
        return "\n".join(lines)

    ctx.emit(result, text)
    return 0


# --- promote, abort, retry -------------------------------------------------------------------

_last_nonce: str = ""


def nonce() -> str:
    """A UTC timestamp to microseconds, strictly increasing within this process."""
    global _last_nonce
    now = datetime.datetime.now(datetime.UTC)
    value = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    while value <= _last_nonce:
        now += datetime.timedelta(microseconds=1)
        value = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    _last_nonce = value
    return value


def deployment_action(ctx: Context, verb: str, name: str) -> int:
    c = ctx.client
    value = f"{verb}/{nonce()}"
    try:
        after = c.patch(kube.MODEL_DEPLOYMENT, name, {"metadata": {"annotations": {ACTION: value}}})
    except kube.NotFoundError:
        raise
    except kube.ApiError as error:
        hints = _auth_hints(error)
        if error.status == 403:
            hints.append("rollout actions need 'patch' on modeldeployments.modelops.io in this namespace")
        raise _denied(f"{verb} on modeldeployment {name}", error, hints) from None
    result = {
        "kind": "ModelDeployment",
        "name": name,
        "namespace": c.namespace,
        "action": verb,
        "annotations": {ACTION: value},
        "phase": views.dig(after, "status.phase"),
    }
    ctx.emit(result, lambda: f"modeldeployment {name}: {verb} requested ({ACTION}={value})")
    return 0


def cmd_promote(ctx: Context) -> int:
    kind, name = split_target(ctx.args.target, {"version": VERSION_PREFIXES, "deployment": DEPLOYMENT_PREFIXES})
    stage: str | None = ctx.args.stage
    if kind == "version" and stage is None:
        raise UsageError("promoting a ModelVersion needs --stage (None, Staging, Production or Archived)")
    if kind == "deployment" and stage is not None:
        raise UsageError("--stage applies to a ModelVersion; a ModelDeployment is promoted without it")
    if stage is None:
        return deployment_action(ctx, "promote", name)
    c = ctx.client
    before = c.get(kube.MODEL_VERSION, name)
    try:
        after = c.patch(kube.MODEL_VERSION, name, {"spec": {"stage": stage}})
    except kube.ApiError as error:
        hints = _auth_hints(error)
        if error.status == 403:
            hints.append("asking for a stage needs 'patch' on modelversions.modelops.io in this namespace")
        if error.status == 422:
            hints.append(f"spec.stage is one of {', '.join(STAGES)}")
        raise _denied(f"the move of {name} to {stage}", error, hints) from None
    result = {
        "kind": "ModelVersion",
        "name": name,
        "namespace": c.namespace,
        "previousAskedStage": views.dig(before, "spec.stage", "None"),
        "askedStage": views.dig(after, "spec.stage", stage),
        "grantedStage": views.dig(after, "status.stage", "None"),
        "message": views.dig(after, "status.message"),
    }

    def text() -> str:
        line = (
            f"modelversion {name}: asked for stage {result['askedStage']} (was {result['previousAskedStage']}); "
            f"granted stage: {result['grantedStage']}"
        )
        tail = (
            ""
            if result["grantedStage"] == stage
            else "\n  the operator grants it once gates pass and approvals suffice"
        )
        return line + tail + (f"\n  {result['message']}" if result["message"] else "")

    ctx.emit(result, text)
    return 0


def cmd_abort(ctx: Context) -> int:
    _, name = split_target(ctx.args.target, {"deployment": DEPLOYMENT_PREFIXES})
    return deployment_action(ctx, "abort", name)


def cmd_retry(ctx: Context) -> int:
    _, name = split_target(ctx.args.target, {"deployment": DEPLOYMENT_PREFIXES})
    return deployment_action(ctx, "retry", name)


# --- history and card ------------------------------------------------------------------------


def resolve(ctx: Context, target: str) -> tuple[str, str, list[dict[str, Any]]]:
    """('version', name, [it]) or ('model', name, its versions): a version of that name wins."""
    kind, name = split_target(target, {"version": VERSION_PREFIXES, "model": MODEL_PREFIXES})
    c = ctx.client
    if kind in (None, "version"):
        found = c.find(kube.MODEL_VERSION, name) if kind is None else c.get(kube.MODEL_VERSION, name)
        if found is not None:
            return "version", name, [found]
    versions = [v for v in c.list(kube.MODEL_VERSION) if views.belongs_to_model(v, name)]
    if not versions:
        what = "model" if kind == "model" else "modelversion or model"
        raise CommandError(f"no {what} named {name} in namespace {c.namespace}")
    return "model", name, views.sort_versions(versions)


def history_text(events: list[dict[str, Any]], colour: bool) -> str:
    if not events:
        return "no stage transitions, approvals or rejections yet"
    rows = [
        [e.get("at"), e.get("version"), e.get("event"), e.get("from"), e.get("to"), e.get("by"), e.get("reason")]
        for e in events
    ]
    return render.table(["TIME", "VERSION", "EVENT", "FROM", "TO", "BY", "REASON"], rows, colour=colour)


def cmd_history(ctx: Context) -> int:
    kind, name, versions = resolve(ctx, ctx.args.target)
    events = views.history(versions)
    data = {kind: name, "namespace": ctx.namespace, "events": events}
    ctx.emit(data, lambda: history_text(events, ctx.colour))
    return 0


def cmd_audit(ctx: Context) -> int:
    model: str = ctx.args.model
    c = ctx.client
    versions = views.sort_versions(v for v in c.list(kube.MODEL_VERSION) if views.belongs_to_model(v, model))
    if not versions:
        raise CommandError(f"model {model} has no ModelVersions in namespace {c.namespace}")
    data = {"model": model, "namespace": c.namespace, "events": audit.trail(versions)}
    ctx.emit(data, lambda: cardpage.audit_markdown(data).rstrip("\n"))
    return 0


def cmd_card(ctx: Context) -> int:
    as_html: bool = ctx.args.html
    if as_html and ctx.output != "table":
        raise UsageError(f"--html and -o {ctx.output} ask for two formats: choose one")
    _, name, versions = resolve(ctx, ctx.args.target)
    version = views.pick_version(versions)
    if version is None:  # resolve() never returns an empty list; kept for the type checker
        raise CommandError(f"no versions of {name}")
    c = ctx.client
    view = views.model_card(version, c.namespace, c.list(kube.MODEL_DEPLOYMENT), c.list(kube.DRIFT_POLICY))
    if as_html:
        sys.stdout.write(cardpage.to_html(view))
        return 0
    ctx.emit(view, lambda: cardpage.to_markdown(view).rstrip("\n"))
    return 0


COMMANDS: dict[str, Callable[[Context], int]] = {
    "status": cmd_status,
    "approve": cmd_approve,
    "promote": cmd_promote,
    "abort": cmd_abort,
    "retry": cmd_retry,
    "history": cmd_history,
    "card": cmd_card,
    "audit": cmd_audit,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2), already printed
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        ctx = Context(args)
        return COMMANDS[args.command](ctx)
    except UsageError as error:
        print(f"kubectl modelops {args.command}: error: {error}", file=sys.stderr)
        return 2
    except CommandError as failure:
        print(f"error: {failure.message}", file=sys.stderr)
        for hint in failure.hints:
            print(f"hint: {hint}", file=sys.stderr)
        return 1
    except kube.ApiError as error:
        print(f"error: {error}", file=sys.stderr)
        for hint in _auth_hints(error):
            print(f"hint: {hint}", file=sys.stderr)
        return 1
    except kube.ConnectError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
