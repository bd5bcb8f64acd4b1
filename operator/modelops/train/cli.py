"""``modelops train``: parse arguments, run one training, report the outcome.

Exit codes: 0 success; 1 a run that failed (bad config, bad data, failed fit), reported as
one line ``modelops train: error: <message>`` on stderr and ``{"ok": false, "error": …}`` in
the termination message; 2 wrong usage (argparse). Progress goes to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from modelops.train import output
from modelops.train.errors import TrainError, one_line

PROG = "modelops train"


_ENVIRONMENT = """environment:
  MODELOPS_FILE_ROOTS        ':'-separated directories file:// datasets may be read from
                             (default: $MODELOPS_PVC_ROOT and the working directory)
  MODELOPS_PVC_ROOT          where pvc://<claim> is mounted (default /mnt/pvc)
  MODELOPS_S3_ENDPOINTS      allowed S3 endpoint origins, comma-separated
                             (default: any https endpoint, http only to loopback)
  MODELOPS_PROGRESS_SECONDS  seconds between 'still fitting' lines (default 30)
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY  s3:// credentials"""


def _allowed_estimators() -> str:
    """The allow-list, for --help: estimator.className must be one of these."""
    from modelops.train.estimators import ALLOWED_ESTIMATORS

    lines = ["estimator.className, one of (nothing else is ever imported):"]
    for task in ("classification", "regression"):
        lines.append(f"  {task}:")
        lines += [f"    {path}" for path, kind in ALLOWED_ESTIMATORS.items() if kind == task]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train an allow-listed scikit-learn model from a run config (docs/contracts.md).",
        epilog=_ENVIRONMENT + "\n\n" + _allowed_estimators(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, metavar="RUN.json", help="the run config (JSON)")
    parser.add_argument("--output", required=True, metavar="DIR", help="where model.skops and result.json go")
    parser.add_argument(
        "--trial-index",
        type=int,
        metavar="N",
        help=(
            "the sweep trial to run (default: $JOB_COMPLETION_INDEX); writes to DIR/trial-N/. Without either, "
            "every trial of the sweep runs here in turn and a summary table is printed"
        ),
    )
    parser.add_argument(
        "--termination-log",
        metavar="PATH",
        help=f"where the termination message goes (default: {output.DEFAULT_TERMINATION_LOG}, if it exists)",
    )
    return parser


def _read_config(path: str) -> object:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise TrainError(f"cannot read config {path}: no such file") from None
    except OSError as exc:
        raise TrainError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise TrainError(f"config {path} is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise TrainError(
            f"config {path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def _stdout(line: str) -> None:
    print(f"{PROG}: {line}", flush=True)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.trial_index is not None and args.trial_index < 0:
        _parser().error(f"argument --trial-index: must be >= 0, got {args.trial_index}")
    try:
        # Imported here so that a usage error costs no scikit-learn import.
        from modelops.train import config as config_mod
        from modelops.train import runner

        run_config = config_mod.parse_config(_read_config(args.config))
        message = runner.train(
            run_config,
            Path(args.output),
            trial_flag=args.trial_index,
            trial_env=os.environ.get("JOB_COMPLETION_INDEX"),
            log=_stdout,
        )
    except TrainError as exc:
        return _fail(exc.message, args)
    except MemoryError:
        return _fail("out of memory while training", args)
    except Exception as exc:  # a library failure or a bug: still one line, still a clean exit
        if os.environ.get("MODELOPS_DEBUG"):
            raise
        return _fail(f"{type(exc).__name__}: {one_line(str(exc), 500)}", args)
    text = output.termination_message(message)
    if output.is_truncated(text):
        # The message lost fields to fit in 4 KiB: the whole result goes to the log, where the
        # operator can read it (checked against the message's resultSha256).
        trial = message.get("trial")
        directory = Path(args.output) / f"trial-{trial['index']}" if isinstance(trial, dict) else Path(args.output)
        with contextlib.suppress(OSError):
            print(output.result_log_line(directory / output.RESULT_FILE), flush=True)
    try:
        output.write_termination_log(args.termination_log, text)
    except OSError as exc:
        print(f"{PROG}: warning: cannot write the termination log: {exc}", file=sys.stderr)
    return 0


def _own_dir(args: argparse.Namespace) -> Path:
    """The directory this run writes to, as far as it can be known without the config.

    A sweep trial owns ``DIR/trial-<i>`` only: other trials' pods write beside it.
    """
    index = args.trial_index
    if index is None:
        env = os.environ.get("JOB_COMPLETION_INDEX", "")
        index = int(env) if env.isdigit() else None
    return Path(args.output) / f"trial-{index}" if index is not None else Path(args.output)


def _fail(error: str, args: argparse.Namespace) -> int:
    error = one_line(error, 3000)
    # Whatever failed, a previous run's result must not be mistaken for this run's.
    with contextlib.suppress(OSError):
        output.remove_results(_own_dir(args))
    print(f"{PROG}: error: {error}", file=sys.stderr, flush=True)
    # The error is on stderr already; if the log cannot be written there is nothing better to do.
    with contextlib.suppress(OSError):
        output.write_termination_log(args.termination_log, output.error_message(error))
    return 1
