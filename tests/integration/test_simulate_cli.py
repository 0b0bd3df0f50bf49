"""``faena simulate`` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from faena.cli.simulate import simulate

REPO = Path(__file__).parents[2]
DATA = REPO / "tests" / "unit" / "autoscale" / "data"
SEED = str(DATA / "seed-airflow-hpa.yaml")
FIXED = str(REPO / "deploy" / "k8s" / "base" / "hpa-worker.yaml")
LOAD = str(DATA / "etl-load.yaml")


def test_compares_two_manifests_and_writes_outputs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        simulate,
        ["--hpa", SEED, "--hpa", FIXED, "--load", LOAD, "--duration", "40m", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "airflow-worker-hpa" in result.output and "faena-worker" in result.output
    assert "replica-seconds" in result.output
    summaries = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [s["scenario"] for s in summaries] == ["airflow-worker-hpa", "faena-worker"]
    assert summaries[0]["max_replicas"] == 10  # the seed's Pods metric runs to maxReplicas
    assert all(s["tasks"] > 4000 for s in summaries)
    header = (out / "timeline.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("scenario,t_seconds,desired_replicas")
    assert (out / "timeline.png").read_bytes()[:4] == b"\x89PNG"


def test_options_read_their_environment_twins(tmp_path: Path) -> None:
    env = {
        "FAENA_SIMULATE_HPA": FIXED,
        "FAENA_SIMULATE_LOAD": LOAD,
        "FAENA_SIMULATE_DURATION": "5m",
        "FAENA_SIMULATE_OUT": str(tmp_path / "env-out"),
        "FAENA_SIMULATE_SEED": "3",
        "FAENA_SIMULATE_PLOT": "false",
        "FAENA_SIMULATE_DEPLOYMENT": str(DATA / "seed-camunda-deployment.yaml"),
    }
    result = CliRunner().invoke(simulate, [], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env-out" / "timeline.csv").exists()
    assert not (tmp_path / "env-out" / "timeline.png").exists()


def test_help_shows_every_env_var() -> None:
    result = CliRunner().invoke(simulate, ["--help"])
    assert result.exit_code == 0
    for name in ("HPA", "LOAD", "DURATION", "OUT", "DEPLOYMENT", "SEED", "PLOT"):
        assert f"FAENA_SIMULATE_{name}" in result.output


def test_bad_manifest_fails_with_the_field_and_fix(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        Path(FIXED).read_text(encoding="utf-8").replace('averageValue: "10"', "averageValue: ten"),
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        simulate, ["--hpa", str(bad), "--load", LOAD, "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1
    assert "spec.metrics[0].external.target.averageValue" in result.output
    assert "500m" in result.output


def test_bad_duration_is_reported() -> None:
    result = CliRunner().invoke(simulate, ["--hpa", FIXED, "--load", LOAD, "--duration", "soon"])
    assert result.exit_code == 1
    assert "--duration" in result.output
