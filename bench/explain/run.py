"""Benchmark ``POST /v2/models/NAME/explain`` on a 100-tree forest against shap's own TreeExplainer call.

One run: our trainer fits a 100-tree RandomForestClassifier on the messy churn table
(``tests/messytables.py``: gaps, text categories, a number that is a category); a real
``modelops serve`` (one worker) explains batches of rows over HTTP, and, in this process, shap's
TreeExplainer (built once, as a user would) explains the same rows after the pipeline's own
preprocessing: ``explainer.shap_values(pipeline[:-1].transform(rows))``. The two alternate, round by
round, for each batch size; the medians and the ratio ours/shap are printed and written to
``results.json``. Both answers are checked to add up to the same totals per row before timing.

What the ratio holds: our time is the whole request as a client sees it (JSON encoding, HTTP,
decoding and type conversion, the preprocessing, shap's values, folding them into the source
columns, the model's own output and the add-up check, the JSON answer); shap's is the
preprocessing plus its values. The first explanation of a server (importing shap, preparing the
explainer) is measured apart and not in the rounds.

    python bench/explain/run.py --rounds 15
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "tests")]

import requests  # noqa: E402

import messytables  # noqa: E402

KINDS = {"age": "float", "income": "float", "tenure_months": "int", "num_products": "int_cat", "plan": "str",
         "region": "str"}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def train(work: Path, rows: int, trees: int) -> tuple[Path, Any]:
    from modelops.train import runner
    from modelops.train.config import parse_config

    table = messytables.customers(rows).drop(columns=["customer_id", "signup_date"])
    csv = work / "churn.csv"
    table.to_csv(csv, index=False)
    config = parse_config({
        "model": "churn",
        "dataset": {"uri": csv.resolve().as_uri(), "target": "churned", "features": list(KINDS),
                    "categoricalFeatures": ["num_products", "plan", "region"]},
        "estimator": {"className": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": trees}},
    })  # fmt: skip
    os.environ["MODELOPS_FILE_ROOTS"] = str(work.resolve())
    runner.train(config, work / "out")
    import pandas as pd

    return work / "out", pd.read_csv(csv)[list(KINDS)]


def _cell(v: Any) -> Any:
    if isinstance(v, float) and v != v:
        return None
    return v.item() if isinstance(v, np.generic) else v


def body(rows: Any) -> bytes:
    inputs = []
    for name, kind in KINDS.items():
        values = [_cell(v) for v in rows[name].tolist()]
        datatype = "BYTES" if kind == "str" else "FP64"
        inputs.append({"name": name, "shape": [len(values)], "datatype": datatype, "data": values})
    return json.dumps({"inputs": inputs}).encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batches", default="1,10,100", help="rows per request (default: %(default)s)")
    parser.add_argument("--train-rows", type=int, default=5000)
    parser.add_argument("--trees", type=int, default=100)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    import shap

    from modelops.serve import predictor

    with tempfile.TemporaryDirectory(prefix="bench-explain-") as tmp:
        work = Path(tmp)
        out, table = train(work, args.train_rows, args.trees)
        result = json.loads((out / "result.json").read_text())
        sha = result["artifact"]["sha256"]
        pipeline = predictor.load(out, predictor.load_contract(out), sha).model
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
        server = subprocess.Popen(
            [sys.executable, "-m", "modelops", "serve", "--model-dir", str(out), "--port", str(port), "--workers", "1",
             "--sha256", sha, "--explain-max-rows", str(max(batches))],
            env=env, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        session = requests.Session()
        url = f"http://127.0.0.1:{port}/v2/models/churn/explain"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if session.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).ok:
                        break
                except requests.RequestException:
                    time.sleep(0.1)
            rng = np.random.default_rng(1)
            started = time.perf_counter()
            first = session.post(url, data=body(table.iloc[:1]), timeout=300)
            first_s = time.perf_counter() - started
            assert first.status_code == 200, first.text

            peer_started = time.perf_counter()
            explainer = shap.TreeExplainer(pipeline[-1])
            peer_build_s = time.perf_counter() - peer_started

            def peer(rows: Any) -> np.ndarray:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return np.asarray(explainer.shap_values(pipeline[:-1].transform(rows), check_additivity=False))

            def ours(payload: bytes) -> dict[str, Any]:
                response = session.post(url, data=payload, timeout=300)
                assert response.status_code == 200, response.text
                return dict(response.json())

            results: dict[str, Any] = {"first_request_s": first_s, "shap_explainer_build_s": peer_build_s,
                                       "batches": {}}  # fmt: skip
            for n in batches:
                picks = [table.iloc[rng.choice(len(table), n, replace=False)] for _ in range(args.rounds)]
                payloads = [body(rows) for rows in picks]
                # Same rows, same totals: ours (folded into source columns) and shap's (per derived feature).
                answer = ours(payloads[0])
                outputs = {o["name"]: o for o in answer["outputs"]}
                totals = np.reshape(outputs["contributions"]["data"], outputs["contributions"]["shape"]).sum(axis=1)
                np.testing.assert_allclose(totals, peer(picks[0]).sum(axis=1), rtol=0, atol=1e-9)
                times: dict[str, list[float]] = {"ours": [], "shap": []}
                for i, (rows, payload) in enumerate(zip(picks, payloads, strict=True)):
                    order = ("ours", "shap") if i % 2 == 0 else ("shap", "ours")
                    for who in order:
                        t0 = time.perf_counter()
                        if who == "ours":
                            ours(payload)
                        else:
                            peer(rows)
                        times[who].append(time.perf_counter() - t0)
                medians = {k: statistics.median(v) for k, v in times.items()}
                results["batches"][str(n)] = {
                    "ours_ms": medians["ours"] * 1e3, "shap_ms": medians["shap"] * 1e3,
                    "ratio": medians["ours"] / medians["shap"],
                    "ours_ms_per_row": medians["ours"] * 1e3 / n, "shap_ms_per_row": medians["shap"] * 1e3 / n,
                }  # fmt: skip
            metrics = session.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        finally:
            session.close()
            server.terminate()
            server.wait(timeout=30)
    results["setup"] = {"train_rows": args.train_rows, "trees": args.trees, "rounds": args.rounds,
                        "shap": shap.__version__, "cpus": os.cpu_count()}  # fmt: skip
    counted = [line for line in metrics.splitlines() if line.startswith("modelops_explain_rows_total")]
    results["explain_rows_total"] = float(counted[0].rsplit(" ", 1)[1]) if counted else None
    print(f"first request (imports shap, prepares the explainer): {first_s * 1e3:.0f} ms; "
          f"shap's TreeExplainer(...) alone: {peer_build_s * 1e3:.1f} ms")  # fmt: skip
    print(f"{'rows':>5} {'ours ms':>9} {'shap ms':>9} {'ratio':>6} {'ours/row':>9} {'shap/row':>9}")
    for n, r in results["batches"].items():
        print(f"{n:>5} {r['ours_ms']:>9.2f} {r['shap_ms']:>9.2f} {r['ratio']:>6.2f} {r['ours_ms_per_row']:>9.3f} "
              f"{r['shap_ms_per_row']:>9.3f}")  # fmt: skip
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
