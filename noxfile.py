"""Every check of the monorepo. ``nox`` runs the default set (all but ``bench``); ``nox -l`` lists them.

Each session installs from ``uv.lock`` into its own environment with ``uv sync --frozen``; a
unit session holds only its package and that package's workspace dependencies.
"""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["lint", "typecheck", "unit", "contract", "integration", "e2e", "browser"]

PACKAGES = {
    "fleetdeck": "shared/fleetdeck",
    "fleetdeck-testkit": "shared/testkit",
    "fleetdeck-presto": "servers/presto",
    "fleetdeck-spark": "servers/spark",
    "fleetdeck-airflow": "servers/airflow",
    "fleetdeck-registry": "registry",
}
BACKENDS = ["postgres", "keycloak", "trino", "spark", "airflow"]
"""Real backends with integration tests; each is a pytest marker of the same name."""
NOT_INTEGRATION = " and ".join(f"not {backend}" for backend in [*BACKENDS, "e2e", "browser"])


def has_tests(folder: str) -> bool:
    """Whether ``folder`` holds any ``test_*.py`` file."""
    return os.path.isdir(folder) and any(name.startswith("test_") for name in os.listdir(folder))


def test_folders() -> list[str]:
    """Every package's test folder that holds tests, plus the cross-package suites."""
    return [f"{path}/tests" for path in PACKAGES.values() if has_tests(f"{path}/tests")] + ["tests"]


def sync(session: nox.Session, *args: str) -> None:
    """Install exactly what ``uv.lock`` pins for ``args`` into the session's environment."""
    session.run_install(
        "uv",
        "sync",
        "--frozen",
        "--inexact",
        *args,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
        silent=True,
    )


def pytest(session: nox.Session, *args: str) -> None:
    """Run pytest; extra arguments after ``--`` on the nox command line are passed through."""
    session.run("pytest", *args, *session.posargs, env={"PYTHONHASHSEED": "0"})


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff lint and format check over the whole tree."""
    sync(session, "--all-packages", "--only-group", "dev")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every package's sources and tests."""
    sync(session, "--all-packages")
    session.run("mypy", *[f"{path}/src" for path in PACKAGES.values()])
    for folder in [*test_folders(), "bench", "noxfile.py"]:  # test modules share names across folders
        session.run("mypy", folder)


@nox.session
@nox.parametrize("package", list(PACKAGES))
def unit(session: nox.Session, package: str) -> None:
    """One package's own tests, in an environment holding only it and its workspace dependencies."""
    sync(session, "--package", package)
    folder = f"{PACKAGES[package]}/tests"
    if not has_tests(folder):
        session.skip(f"{package} has no tests yet")
    pytest(session, folder, "-m", NOT_INTEGRATION)


@nox.session
def contract(session: nox.Session) -> None:
    """Cross-package suites in tests/: manifests, CLI, fleet contracts."""
    sync(session, "--all-packages")
    pytest(session, "tests", "-m", NOT_INTEGRATION)


@nox.session
@nox.parametrize("backend", BACKENDS)
def integration(session: nox.Session, backend: str) -> None:
    """Every test that talks to the real ``backend``, started by the testkit's fixtures."""
    sync(session, "--all-packages")
    pytest(session, *test_folders(), "-m", backend)


@nox.session
def e2e(session: nox.Session) -> None:
    """Real processes over the network: `fleetdeck serve`, MCP clients, the report."""
    sync(session, "--all-packages")
    pytest(session, "tests", "-m", "e2e")


@nox.session
def browser(session: nox.Session) -> None:
    """The registry's web UI in a real headless Chromium driven by Playwright."""
    sync(session, "--all-packages")
    pytest(session, *test_folders(), "-m", "browser")


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmarks; results go to bench/results/*.json (see BENCHMARKS.md)."""
    sync(session, "--all-packages")
    os.makedirs("bench/results", exist_ok=True)
    session.run("python", "bench/bench_kit.py", "--json-out", "bench/results/kit.json", *session.posargs)
    session.run("python", "bench/bench_writer.py", "--json-out", "bench/results/writer.json")
    session.run("python", "bench/bench_report.py", "--json-out", "bench/results/report.json")
    session.run("python", "bench/bench_jwt.py", "--json-out", "bench/results/jwt.json")
    session.run("python", "bench/bench_registry.py", "--json-out", "bench/results/registry.json")
    session.run("python", "bench/bench_spark.py", "--json-out", "bench/results/spark.json")
    session.run("python", "bench/bench_presto.py", "--json-out", "bench/results/presto.json")
    session.run("python", "bench/bench_airflow.py", "--json-out", "bench/results/airflow.json")
