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
    paths["header_only"] = directory / "header-only.csv"
    paths["header_only"].write_text("x,y,colour\n")
    paths["all_missing"] = directory / "all-missing.csv"
    paths["all_missing"].write_text("x,y,colour\n" + ",,\n" * 50)
    wide = pd.DataFrame(rng.normal(size=(200, 400)), columns=[f"f{i}" for i in range(400)])
    paths["wide"] = directory / "wide.csv"
    wide.to_csv(paths["wide"], index=False)
    paths["wide_shifted"] = directory / "wide-shifted.csv"
    (wide + 3.0).to_csv(paths["wide_shifted"], index=False)
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
        (("--reference", "{ref_csv}", "--current", "{header_only}"), "current file {header_only} has no rows"),
        (("--reference", "{header_only}", "--current", "{same_csv}"), "reference file {header_only} has no rows"),
        (
            ("--reference", "{ref_csv}", "--current", "{all_missing}"),
            "no feature could be scored (x: 50 missing current values dropped; the current sample is empty; y:",
        ),
        (
            ("--reference", "{ref_csv}", "--current", "{same_csv}", "--method", "ks", "--threshold", "2"),
            "the ks threshold is a p-value and must be in (0, 1]",
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


MODELOPS = Path(sys.executable).parent / "modelops"


def script(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user's shell runs it."""
    return subprocess.run([str(MODELOPS), "drift", *args], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          check=False)  # fmt: skip


@pytest.mark.parametrize(("method", "stand_in"), [("ks", "chi2"), ("wasserstein", "jsd")])
def test_a_numeric_only_method_hands_categorical_features_to_its_stand_in(
    files: dict[str, Path], method: str, stand_in: str
) -> None:
    table = script("--reference", str(files["ref_csv"]), "--current", str(files["shifted_parquet"]), "--method", method)
    assert table.returncode == 1, table.stderr  # x drifted
    assert table.stderr == ""
    rows = {line.split()[0]: line.split() for line in table.stdout.splitlines()[1:4]}
    assert table.stdout.splitlines()[0].split()[:3] == ["feature", "kind", "method"]
    assert [rows[name][2] for name in ("x", "y", "colour")] == [method, method, stand_in]
    summary = table.stdout.splitlines()[-1]
    assert summary.startswith(f"{method} on 2 numeric, {stand_in} on 1 categorical ({method} applies to numeric")
    assert "drift in" in summary


    as_json = script("--reference", str(files["ref_csv"]), "--current", str(files["shifted_parquet"]), "--method",
                     method, "--format", "json")  # fmt: skip
    report = json.loads(as_json.stdout)
    assert report["method"] == method
    methods_used = [(f["name"], f["method"]) for f in report["features"]]
    assert methods_used == [("x", method), ("y", method), ("colour", stand_in)]
    assert report["standIn"]["method"] == stand_in
    assert report["standIn"]["features"] == ["colour"]
    assert report["driftedFeatures"][0] == "x"  # shifted by two standard deviations
    assert "colour" not in report["driftedFeatures"]  # drawn alike
    assert summary.endswith(": " + ", ".join(report["driftedFeatures"]))


def test_a_p_value_threshold_carries_over_to_chi2_but_not_a_distance_to_jsd(files: dict[str, Path]) -> None:
    args = ("--reference", str(files["ref_csv"]), "--current", str(files["same_csv"]), "--format", "json")
    tests = json.loads(script(*args, "--method", "ks", "--threshold", "0.01").stdout)
    assert {f["method"]: f["threshold"] for f in tests["features"]} == {"ks": 0.01, "chi2": 0.01}
    distances = json.loads(script(*args, "--method", "wasserstein", "--threshold", "0.5").stdout)
    assert {f["method"]: f["threshold"] for f in distances["features"]} == {"wasserstein": 0.5, "jsd": 0.1}


def test_a_reader_that_stops_early_gets_no_traceback_and_the_verdict_stands(files: dict[str, Path]) -> None:
    for current, verdict in (("wide", 0), ("wide_shifted", 1)):
        command = [str(MODELOPS), "drift", "--reference", str(files["wide"]), "--current", str(files[current]),
                   "--format", "json"]  # fmt: skip
        # `| head -1`: read one line, then close the pipe while the report (far over a pipe's 64 KiB) is written.
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT) as process:
            assert process.stdout is not None
            assert process.stderr is not None
            assert process.stdout.readline() == b"{\n"
            process.stdout.close()
            stderr = process.stderr.read().decode()
            assert process.wait(timeout=120) == verdict, stderr
        assert stderr == ""


def test_help_shows_every_default() -> None:
    text = " ".join(script("--help").stdout.split())
    for default in ("(default: psi)", "(default: every reference feature)", "(default: the method's, see below)",
                    "(default: table)", "(default: 10)", "(default: none; types decide)", "(default: 30)",
                    "ks -> chi2, wasserstein -> jsd"):  # fmt: skip
        assert default in text, default
