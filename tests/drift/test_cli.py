"""``modelops drift`` as a real subprocess on CSV, Parquet, JSON and YAML files the tests write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from modelops import drift

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "operator"))
    return subprocess.run(
        [sys.executable, "-m", "modelops", "drift", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("drift-cli")
    rng = np.random.default_rng(0)
    reference = pd.DataFrame(
        {"x": rng.normal(size=500), "y": rng.normal(size=500), "colour": rng.choice(["red", "blue"], 500)}
    )
    same = pd.DataFrame(
        {"x": rng.normal(size=400), "y": rng.normal(size=400), "colour": rng.choice(["red", "blue"], 400)}
    )
    shifted = same.assign(x=same["x"] + 2.0)
    paths = {
        "ref_csv": directory / "reference.csv",
        "ref_parquet": directory / "reference.parquet",
        "same_csv": directory / "same.csv",
        "shifted_parquet": directory / "shifted.parquet",
        "missing_column": directory / "missing.csv",
        "model_version": directory / "modelversion.yaml",
        "counts": directory / "counts.json",
        "notes": directory / "notes.txt",
    }
    reference.to_csv(paths["ref_csv"], index=False)
    reference.to_parquet(paths["ref_parquet"])
    same.to_csv(paths["same_csv"], index=False)
    shifted.to_parquet(paths["shifted_parquet"])
    same.drop(columns=["y"]).to_csv(paths["missing_column"], index=False)
    stats_ = drift.reference_stats(reference)
    version = {"apiVersion": "modelops.io/v1alpha1", "kind": "ModelVersion", "spec": {"referenceStats": stats_}}
    paths["model_version"].write_text(yaml.safe_dump(version))
    counts = {f["name"]: drift.bin_counts(f, shifted[f["name"]]) for f in stats_["features"]}
    paths["counts"].write_text(json.dumps({"features": counts}))
    paths["notes"].write_text("not a table")
    return paths


def test_no_drift_exits_0_with_a_table(files: dict[str, Path]) -> None:
    result = run("--reference", str(files["ref_csv"]), "--current", str(files["same_csv"]))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["feature", "kind", "score", "threshold", "drifted", "reference", "current", "note"]
    assert lines[1].split()[:2] == ["x", "numeric"]
    assert lines[1].split()[4:7] == ["no", "500", "400"]
    assert lines[-1] == "psi: drift in 0 of 3 features (drifted when score >= 0.2)"


def test_drift_exits_1_csv_against_parquet_in_json(files: dict[str, Path]) -> None:
    result = run(
        "--reference",
        str(files["ref_csv"]),
        "--current",
        str(files["shifted_parquet"]),
        "--method",
        "ks",
        "--features",
        "x,y",
        "--format",
        "json",
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["method"] == "ks"
    assert report["driftedFeatures"] == ["x"]
    assert [f["name"] for f in report["features"]] == ["x", "y"]
    assert report["features"][0]["pValue"] < 0.05
    assert report["features"][0]["threshold"] == 0.05


def test_threshold_option(files: dict[str, Path]) -> None:
    result = run(
        "--reference",
        str(files["ref_parquet"]),
        "--current",
        str(files["shifted_parquet"]),
        "--features",
        "x",
        "--threshold",
        "1000",
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["features"][0]["threshold"] == 1000


def test_model_version_yaml_reference_against_samples_and_counts(files: dict[str, Path]) -> None:
    from_samples = run(
        "--reference", str(files["model_version"]), "--current", str(files["shifted_parquet"]), "--format", "json"
    )
    from_counts = run("--reference", str(files["model_version"]), "--current", str(files["counts"]), "--format", "json")
    raw = run("--reference", str(files["ref_parquet"]), "--current", str(files["shifted_parquet"]), "--format", "json")
    assert from_samples.returncode == from_counts.returncode == raw.returncode == 1
    scores = [[f["score"] for f in json.loads(r.stdout)["features"]] for r in (from_samples, from_counts, raw)]
    assert scores[0] == scores[1] == pytest.approx(scores[2], rel=1e-12)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--reference", "{dir}/nope.csv", "--current", "{same_csv}"), "reference file not found: {dir}/nope.csv"),
        (
            ("--reference", "{ref_csv}", "--current", "{same_csv}", "--features", "x,zz"),
            "unknown feature 'zz': not a column of the reference",
        ),
        (
            ("--reference", "{ref_csv}", "--current", "{same_csv}", "--method", "mmd"),
            "unknown method 'mmd'; expected one of psi, ks, jsd, wasserstein, chi2",
        ),
        (
            ("--reference", "{ref_csv}", "--current", "{missing_column}"),
            "the current data has no column 'y' of the reference",
        ),
        (
            ("--reference", "{ref_csv}", "--current", "{same_csv}", "--method", "wasserstein"),
            "method 'wasserstein' applies to numeric features only; feature 'colour' is categorical",
        ),
        (("--reference", "{notes}", "--current", "{same_csv}"), "unsupported type '.txt'"),
        (
            ("--reference", "{ref_csv}", "--current", "{counts}"),
            "per-bin current counts need a referenceStats reference",
        ),
        (
            (
                "--reference",
                "{ref_csv}",
            ),
            "the following arguments are required: --current",
        ),
        (("--reference", "{ref_csv}", "--current", "{same_csv}", "--format", "xml"), "invalid choice: 'xml'"),
    ],
)
def test_bad_input_exits_2_with_one_line(files: dict[str, Path], args: tuple[str, ...], message: str) -> None:
    names = {key: str(path) for key, path in files.items()} | {"dir": str(files["ref_csv"].parent)}
    result = run(*(arg.format(**names) for arg in args))
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("modelops drift: error: ")
    assert message.format(**names) in result.stderr


def test_help_lists_methods_and_exit_codes() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "exit status: 0 no drift, 1 drift found, 2 usage error or bad input." in result.stdout
    for method in drift.METHODS:
        assert drift.METHOD_DESCRIPTIONS[method][:40] in " ".join(result.stdout.split())
