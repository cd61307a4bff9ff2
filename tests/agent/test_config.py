"""Configs: the presets load; every mistake names its key; overrides work."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from netgym_agent.algorithms import model_kwargs
from netgym_agent.config import (
    TrainConfig,
    config_from_dict,
    config_to_yaml,
    load_config,
    parse_yaml,
)
from netgym_agent.errors import ConfigError, RunDirError, explain
from netgym_agent.rundir import RunDir
from tests.agent.helpers import CONFIGS, SMALL_CARTPOLE, clean_env, run_train, write_config


def small(**changes: object) -> dict:
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in SMALL_CARTPOLE.items()}
    config["algo"]["hyperparams"] = dict(SMALL_CARTPOLE["algo"]["hyperparams"])
    config.update(changes)
    return config


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_presets_load(path: Path) -> None:
    config = load_config(path)
    assert config.total_timesteps > 0
    model_kwargs(config.algo)


def test_presets_cover_the_issue() -> None:
    ids = {load_config(p).env.id for p in CONFIGS.glob("*.yaml")}
    assert ids >= {"CartPole-v1", "ALE/Pong-v5", "netgym/Catch-v0"}
    catch = load_config(CONFIGS / "catch_ppo.yaml")
    assert catch.env.kwargs == {"observation": "ram"}


def test_cartpole_preset_has_the_zoo_hyperparameters() -> None:
    config = load_config(CONFIGS / "cartpole_ppo.yaml")
    assert config.env.num_envs == 8
    assert config.algo.hyperparams == {
        "n_steps": 32,
        "batch_size": 256,
        "gae_lambda": 0.8,
        "gamma": 0.98,
        "n_epochs": 20,
        "ent_coef": 0.0,
        "learning_rate": "lin_1e-3",
        "clip_range": "lin_0.2",
    }
    kwargs = model_kwargs(config.algo)
    assert kwargs["learning_rate"](1.0) == pytest.approx(1e-3)
    assert kwargs["learning_rate"](0.5) == pytest.approx(5e-4)
    assert kwargs["clip_range"](0.0) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"env": {"id": "CartPole-v1", "num_env": 4}}, ["env.num_env", "did you mean 'num_envs'"]),
        ({"env": {"id": "CartPole-v1", "num_envs": "eight"}}, ["env.num_envs", "'eight'"]),
        ({"env": {"id": "CartPole-v1", "num_envs": 0}}, ["env.num_envs", "greater than"]),
        ({"total_timesteps": None}, ["total_timesteps"]),
        ({"algo": {"name": "sac"}}, ["algo.name", "'sac'"]),
        ({"evaluation": {}}, ["evaluation: unknown key", "known: env, algo"]),
        ({"eval": {"every_step": 5}}, ["eval.every_step", "did you mean 'every_steps'"]),
        ({"device": "gpu"}, ["device", "cuda:N"]),
        ({"normalize": {"norm_ob": True}}, ["normalize.norm_ob", "norm_obs"]),
        (
            {"env": {"id": "CartPole-v1", "wrappers": [{"nam": "atari"}]}},
            ["env.wrappers", "item 0"],
        ),
        ({"Seed": 3}, ["Seed: unknown key", "did you mean 'seed'"]),
        ({"env": {"id": "CartPole-v1", "Num_envs": 2}}, ["env.Num_envs: unknown key"]),
        ({"normalize": {"Norm_obs": True}}, ["normalize.Norm_obs: unknown key"]),
        (
            {"eval": {"every_steps": 0, "stop_at_mean_return": 100}},
            ["eval: stop_at_mean_return is checked at evaluations", "every_steps above 0"],
        ),
        ({"seed": 2**32}, ["seed", "less than 4294967296"]),
        (
            {"env": {"id": "CartPole-v1", "reconnect_timeout_s": float("inf")}},
            ["env.reconnect_timeout_s", "less than or equal to 1000000"],
        ),
    ],
    ids=[
        "unknown-key",
        "wrong-type",
        "out-of-range",
        "missing",
        "unknown-algo",
        "unknown-section",
        "nested-typo",
        "bad-device",
        "normalize-typo",
        "bad-wrapper",
        "capitalised-key",
        "capitalised-nested-key",
        "capitalised-normalize-key",
        "goal-without-evaluations",
        "seed-past-numpys",
        "reconnect-forever",
    ],
)
def test_bad_config_names_the_key(change: dict, words: list[str]) -> None:
    config = small(**change)
    if change.get("total_timesteps", 0) is None:
        del config["total_timesteps"]
    with pytest.raises(ConfigError) as info:
        config_from_dict(config, source="my.yaml")
    message = str(info.value)
    assert "my.yaml" in message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(
    ("hyperparams", "words"),
    [
        ({"n_step": 32}, ["algo.hyperparams.n_step", "did you mean 'n_steps'"]),
        ({"n_envs": 8}, ["algo.hyperparams.n_envs", "env.num_envs"]),
        ({"learning_rate": "lin_fast"}, ["algo.hyperparams.learning_rate", "lin_<number>"]),
        ({"policy_kwargs": {"activation_fn": "tanhh"}}, ["policy_kwargs", "did you mean 'tanh'"]),
        (
            {"policy_kwargs": {"net_arc": [8]}},
            ["algo.hyperparams.policy_kwargs", "MlpPolicy", "did you mean 'net_arch'"],
        ),
        ({"gamma": "high"}, ["algo.hyperparams.gamma: expected a number, got 'high'"]),
        ({"batch_size": "256"}, ["algo.hyperparams.batch_size: expected a whole number"]),
        ({"n_epochs": 2.5}, ["algo.hyperparams.n_epochs: expected a whole number, got 2.5"]),
        ({"normalize_advantage": 1}, ["normalize_advantage: expected true or false, got 1"]),
        ({"target_kl": "off"}, ["algo.hyperparams.target_kl: expected a number or null"]),
        ({"n_epochs": 0}, ["algo.hyperparams.n_epochs: expected a value of at least 1, got 0"]),
        ({"gamma": 1.5}, ["algo.hyperparams.gamma: expected a value from 0 to 1, got 1.5"]),
    ],
    ids=[
        "typo",
        "zoo-key-elsewhere",
        "bad-schedule",
        "bad-activation",
        "policy-kwarg-typo",
        "float-string",
        "int-string",
        "int-fraction",
        "bool-number",
        "optional-float",
        "no-epochs",
        "gamma-above-1",
    ],
)
def test_bad_hyperparameter_names_the_key(hyperparams: dict, words: list[str]) -> None:
    config = small()
    config["algo"]["hyperparams"] = hyperparams
    with pytest.raises(ConfigError) as info:
        config_from_dict(config)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_hyperparameters_are_given_to_sb3_as_the_types_it_takes() -> None:
    config = small()
    config["algo"]["hyperparams"] = {"n_steps": 64.0, "gamma": 1, "target_kl": None}
    kwargs = model_kwargs(config_from_dict(config).algo)
    assert kwargs["n_steps"] == 64 and isinstance(kwargs["n_steps"], int)  # YAML's 64.0, 1e5
    assert kwargs["gamma"] == 1.0 and isinstance(kwargs["gamma"], float)
    assert kwargs["target_kl"] is None


def test_bad_policy_names_the_key() -> None:
    config = small()
    config["algo"]["policy"] = "MLPPolicy"
    with pytest.raises(ConfigError, match=r"algo\.policy.*did you mean 'MlpPolicy'"):
        config_from_dict(config)


def test_overrides_and_yaml_numbers(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", small())
    config = load_config(
        path,
        [
            "total_timesteps=1e5",
            "algo.hyperparams.learning_rate=3e-4",
            "eval.every_steps=1000",
            "eval.stop_at_mean_return=475",
            "normalize=true",
            "env.kwargs.max_episode_steps=100",
        ],
    )
    assert config.total_timesteps == 100_000
    assert config.algo.hyperparams["learning_rate"] == pytest.approx(3e-4)
    assert config.eval.stop_at_mean_return == 475
    assert config.normalize is not None and config.normalize.norm_obs
    assert config.env.kwargs == {"max_episode_steps": 100}
    with pytest.raises(ConfigError, match="key=value"):
        load_config(path, ["seed"])
    with pytest.raises(ConfigError, match=r"seed\.x: unknown key|seed is 0, not a mapping"):
        load_config(path, ["seed.x=1"])
    # `normalize: true` is the section with its defaults: one of them can be set.
    config = load_config(path, ["normalize=true", "normalize.clip_obs=5"])
    assert config.normalize is not None and config.normalize.clip_obs == 5
    with pytest.raises(ConfigError, match="normalize is False, not a mapping"):
        load_config(path, ["normalize=false", "normalize.clip_obs=5"])


def test_saved_config_reads_back_equal(tmp_path: Path) -> None:
    config = load_config(CONFIGS / "pong_ppo.yaml")
    path = tmp_path / "config.yaml"
    path.write_text(config_to_yaml(config, header="a comment"))
    assert load_config(path) == config
    assert path.read_text().startswith("# a comment\n")
    assert isinstance(config, TrainConfig)


def test_strings_that_look_like_numbers_stay_strings_when_saved(tmp_path: Path) -> None:
    kwargs = {"level": "1e5", "scale": 1e5, "name": ".5"}
    config = config_from_dict(small(env={"id": "CartPole-v1", "kwargs": kwargs}), source="t")
    path = tmp_path / "config.yaml"
    path.write_text(config_to_yaml(config))
    assert load_config(path).env.kwargs == kwargs


def test_command_reports_a_bad_config_and_exits_2(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", small())
    run_dir = tmp_path / "run"
    result = run_train(
        None, str(path), "--run-dir", str(run_dir), "--set", "algo.hyperparams.n_step=8"
    )
    assert result.returncode == 2, result.stdout
    assert "algo.hyperparams.n_step" in result.stdout and "n_steps" in result.stdout
    assert "Traceback" not in result.stdout
    assert not run_dir.exists()


def made_run(run_dir: Path) -> None:
    """A run folder with its config, as a training that stopped before its first
    checkpoint leaves it (no longer locked)."""
    run = RunDir(run_dir)
    run.create(config_from_dict(small()), "a run")
    run.unlock()


def test_resume_with_no_checkpoint_may_change_what_a_saved_model_would_keep(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    made_run(run_dir)
    result = run_train(
        None,
        *("--run-dir", str(run_dir), "--resume", "--set", "algo.hyperparams.ent_coef=0.1"),
        *("--url", "http://127.0.0.1:9"),  # past the config checks, it stops here
    )
    assert "cannot change" not in result.stdout
    assert f"{run_dir} has no complete checkpoint: starting at step 0" in result.stdout
    assert "cannot reach the envapi at http://127.0.0.1:9" in result.stdout, result.stdout


def test_policy_kwargs_that_are_no_names_are_a_config_error() -> None:
    config = small()
    config["algo"]["hyperparams"]["policy_kwargs"] = {"activation_fn": ["tanh"]}
    with pytest.raises(ConfigError, match="activation_fn: unknown"):
        config_from_dict(config)


def test_resume_may_change_the_env_count_of_ppo(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    made_run(run_dir)
    result = run_train(
        None,
        *("--run-dir", str(run_dir), "--resume", "--set", "env.num_envs=2"),
        *("--url", "http://127.0.0.1:9"),  # past the config checks, it stops here
    )
    assert "cannot change" not in result.stdout
    assert "cannot reach the envapi at http://127.0.0.1:9" in result.stdout, result.stdout


def test_a_run_folder_that_cannot_be_written_is_a_run_dir_error(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("a file, not a folder")
    config = config_from_dict(SMALL_CARTPOLE)
    with pytest.raises(RunDirError, match=r"cannot write the run folder .*: Not a directory$"):
        RunDir(tmp_path / "runs" / "small").create(config, "header")
    # Only a question of permissions gets the hint about the user the container runs as.
    denied = explain(PermissionError(errno.EACCES, "Permission denied"))
    assert denied.startswith("Permission denied (this runs as user") and "NETGYM_UID" in denied


def test_runs_of_one_config_started_at_once_get_their_own_folders(tmp_path: Path) -> None:
    claims = [RunDir.claim_default(Path("small.yaml"), root=tmp_path) for _ in range(3)]
    assert len(set(claims)) == 3 and all(claim.is_dir() for claim in claims)
    for claim in claims:
        (claim / "config.yaml").write_text("")
    if claims[2].name.startswith(claims[0].name):  # within one second
        assert claims[2].name == f"{claims[0].name}-3"
    newest = RunDir.newest_of(Path("small.yaml"), root=tmp_path)
    assert newest is not None and newest.path in claims


def test_a_default_run_folder_that_cannot_be_made_is_a_run_folder_error(tmp_path: Path) -> None:
    # As for a --run-dir that cannot be written: the same error and exit status.
    blocked = tmp_path / "runs"
    blocked.write_text("a file where runs/ would be")
    with pytest.raises(RunDirError, match=r"cannot write the run folder .*runs/small-\d{8}"):
        RunDir.claim_default(Path("small.yaml"), root=blocked)


def test_a_folder_with_no_run_says_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match=r"holds no run \(no config.yaml\): give a run folder"):
        RunDir(tmp_path).load_config([])


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--model", "bset", "expected best, final, latest or a checkpoint folder, got 'bset'"),
        ("--url", "gpu-box:8000", "expected a URL with its scheme, e.g. http://gpu-box:8000"),
    ],
    ids=["model-typo", "url-without-scheme"],
)
def test_a_bad_command_line_exits_2_saying_what_to_give(
    tmp_path: Path, option: str, value: str, message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "netgym_agent", "evaluate", str(tmp_path), option, value],
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_an_empty_config_file_says_what_a_config_is(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match=r"a config is a mapping of keys .*got an empty file"):
        load_config(empty)


def test_a_config_that_is_not_there_lists_those_beside_it(tmp_path: Path) -> None:
    write_config(tmp_path / "mycatch_ppo.yaml", small())
    write_config(tmp_path / "cartpole.yaml", small())
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "my_catch.yaml")
    assert str(caught.value).endswith(
        f"my_catch.yaml: No such file or directory; {tmp_path} has cartpole.yaml, "
        "mycatch_ppo.yaml (did you mean 'mycatch_ppo.yaml'?)"
    )


def test_a_file_that_is_no_text_is_a_config_error(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("# réglages\n".encode("latin-1") + b"seed: 1\n")
    with pytest.raises(ConfigError, match=r"latin1.yaml: it is not text in UTF-8 \(byte 3 is"):
        load_config(latin1)


def test_a_run_folder_given_as_the_config_says_how_to_go_on_with_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_config(run / "config.yaml", small())
    with pytest.raises(ConfigError) as caught:
        load_config(run)
    assert str(caught.value).endswith(
        f"it is a run folder: to go on with it, netgym-train train --run-dir {run} --resume"
    )


def test_a_path_in_compose_config_variable_says_it_takes_a_file_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # compose.yaml gives the agent configs/$NETGYM_AGENT_CONFIG.
    monkeypatch.setenv("NETGYM_AGENT_CONFIG", "agents/configs/catch2_ppo.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "configs" / "agents/configs/catch2_ppo.yaml")
    assert str(caught.value).endswith(
        "; NETGYM_AGENT_CONFIG takes the name of a file in agents/configs/ "
        "(e.g. catch2_ppo.yaml), not a path"
    )


def test_a_key_set_twice_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    # The last one would win without a word: the first block's settings lost.
    path = write_config(tmp_path / "twice.yaml", SMALL_CARTPOLE)
    path.write_text(path.read_text() + "eval:\n  episodes: 20\n")
    with pytest.raises(ConfigError, match=r"'eval' is set twice in one mapping \(lines \d+ and"):
        load_config(path)
    # A key that overrides one merged from an anchor is no duplicate.
    merged = parse_yaml("base: &base\n  n_steps: 16\nhp:\n  <<: *base\n  n_steps: 32\n", "x")
    assert merged["hp"] == {"n_steps": 32}
