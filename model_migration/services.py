"""Long-running commands: worker, dev-server, codec-server, sandbox and demo."""

from __future__ import annotations

import asyncio
import secrets
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from model_migration.devserver import check_bindable
from model_migration.domain.errors import DomainError
from model_migration.settings import Settings

err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    app.command()(worker)
    app.command("dev-server")(dev_server)
    app.command("codec-server")(codec_server)
    app.command()(sandbox)
    app.command()(demo)


def worker() -> None:
    """Run a worker: workflows and GitLab activities for the configured task queue."""
    import worker as worker_module
    from model_migration import logging as mm_logging

    settings = Settings()
    mm_logging.configure(settings.log_level, settings.log_format)
    asyncio.run(worker_module.serve(settings))


def dev_server(
    port: Annotated[int, typer.Option("--port", help="gRPC port.")] = 7233,
    ui_port: Annotated[int, typer.Option("--ui-port", help="Web UI port.")] = 8233,
    ip: Annotated[str, typer.Option("--ip", help="Address to bind.")] = "127.0.0.1",
    state_dir: Annotated[Path | None, typer.Option("--state-dir")] = None,
    codec: Annotated[bool, typer.Option(
        "--codec", help="Also serve the payload codec (MODEL_MIGRATION_CODEC_KEYS) and point the Web UI at it, to read encrypted payloads.",
    )] = False,
    codec_port: Annotated[int | None, typer.Option("--codec-port", help="With --codec: its port; default: a free one.")] = None,
) -> None:
    """Run the embedded Temporal dev server, persisted to SQLite in the state directory."""
    from model_migration.codec_server import CodecServer, require_codec
    from model_migration.devserver import DevServer, free_port

    check_bindable(ip, port, "--port", "--ip")
    check_bindable(ip, ui_port, "--ui-port", "--ip")
    settings = Settings()
    codec_server = None
    if codec:
        keys = require_codec(settings.codec_keys, settings.codec_key_id)
        codec_port = codec_port or free_port(ip)
        check_bindable(ip, codec_port, "--codec-port", "--ip")
        codec_server = CodecServer(keys, host=ip, port=codec_port, ui_origins=ui_origins(ip, ui_port), token=settings.codec_server_token)
    server = DevServer((state_dir or settings.state_dir) / "temporal", ip=ip, port=port, ui_port=ui_port,
                       ui_codec_endpoint=codec_server.url if codec_server else None)
    _interrupt_on_term()
    code = 0
    try:
        if codec_server:
            codec_server.start()
        server.start()
        print(f"Temporal address: {server.address}  (MODEL_MIGRATION_TEMPORAL_ADDRESS)")
        print(f"Temporal Web UI:  {server.ui_url}")
        if codec_server:
            print(f"Codec server:     {codec_server.url}  (temporal --codec-endpoint)")
        print(f"State:            {server.db_file}")
        print(f"Server log:       {server.log_file}  (warnings, e.g. a history nearing its limits)", flush=True)
        code = server.wait()
    except KeyboardInterrupt:
        code = 0
    finally:
        _ignore_signals()  # a second Ctrl-C must not leave the child running
        server.stop()
        if codec_server:
            codec_server.stop()
    if code:
        raise DomainError(f"the Temporal dev server exited with code {code}")


def ui_origins(host: str, port: int) -> tuple[str, ...]:
    """The origins a browser gives the Web UI at ``host:port``: loopback is reached as localhost too."""
    names = [host, "localhost"] if host in ("127.0.0.1", "localhost") else [host]
    return tuple(dict.fromkeys(f"http://{name}:{port}" for name in names))


def codec_server(
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8081,
    ui_origin: Annotated[list[str] | None, typer.Option(
        "--ui-origin", help="The Web UI's origin, which may call it from the browser (repeat); default: http://localhost:8233.",
    )] = None,
) -> None:
    """Serve the Temporal Web UI's remote codec endpoint (POST /encode, /decode) with MODEL_MIGRATION_CODEC_KEYS."""
    from model_migration.codec_server import TOKEN_SETTING, CodecServer, require_codec

    settings = Settings()
    codec = require_codec(settings.codec_keys, settings.codec_key_id)
    check_bindable(host, port, "--port", "--host")
    origins = ui_origin or ["http://localhost:8233", "http://127.0.0.1:8233"]
    server = CodecServer(codec, host=host, port=port, ui_origins=origins, token=settings.codec_server_token)
    print(f"Codec server: {server.url}  (the Web UI's codec endpoint; temporal --codec-endpoint)")
    print(f"UI origins:   {', '.join(sorted(server.ui_origins))}")
    print(f"Keys:         {', '.join(codec.key_ids)} (current: {codec.current})")
    print(f"Auth:         {'bearer token from ' + TOKEN_SETTING if server.token else 'none'}", flush=True)
    _interrupt_on_term()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        _ignore_signals()
        server.server_close()


def sandbox(
    port: Annotated[int, typer.Option("--port")] = 8929,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    state_dir: Annotated[Path | None, typer.Option("--state-dir")] = None,
) -> None:
    """Run the local GitLab sandbox (a GitLab REST v4 subset) for development and demos."""
    from gitlab_sandbox.gitlab import GitLabSandbox
    from model_migration.catalog import load_catalog

    check_bindable(host, port, "--port", "--host")
    settings = Settings()
    base = state_dir or settings.state_dir
    base.mkdir(parents=True, exist_ok=True)
    token = settings.gitlab_token.get_secret_value() if settings.gitlab_token else _sandbox_token(base / "sandbox.token")
    box = GitLabSandbox(
        base / "gitlab.db", host=host, port=port, token=token,
        project_path=settings.gitlab_project, group_path=settings.gitlab_group,
        usernames=load_catalog(settings.catalog_dir).usernames(),
    )
    url = f"http://{host}:{port}"
    print(f"GitLab sandbox: {url}  (MODEL_MIGRATION_GITLAB_URL)")
    print(f"Project:        {url}/{settings.gitlab_project}")
    token_from = f"Token file:     {base / 'sandbox.token'}"
    print(token_from if not settings.gitlab_token else "Token:          from MODEL_MIGRATION_GITLAB_TOKEN", flush=True)
    _interrupt_on_term()
    try:
        box.serve_forever()
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM is the normal way to stop it
    finally:
        _ignore_signals()
        box.stop()


def _interrupt_on_term() -> None:
    """SIGTERM (a service manager, ``kill``) stops a server like Ctrl-C: through the cleanup."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGHUP, signal.default_int_handler)


def _ignore_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)


def _sandbox_token(path: Path) -> str:
    """The sandbox's own token, made once and kept beside its state (mode 600)."""
    if path.is_file():
        return path.read_text().strip()
    token = secrets.token_urlsafe(24)
    path.write_text(token)
    path.chmod(0o600)
    return token


def demo(
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the servers running after the summary, until Ctrl-C.")] = False,
    state_dir: Annotated[Path | None, typer.Option("--state-dir", help="Default: a fresh temporary directory.")] = None,
    deprecation: Annotated[bool, typer.Option(
        "--deprecation", help="Rehearse a deprecation instead: Claude 3.7 Sonnet retires, its features move to the winner.",
    )] = False,
    day_seconds: Annotated[float, typer.Option(
        "--day-seconds", min=0.05, max=86400, help="With --deprecation: how long a plan day lasts, in seconds.",
    )] = 0.5,
) -> None:
    """Run a whole migration of 3 features on local servers, in seconds (or, with --deprecation, a deprecation)."""
    if deprecation:
        from model_migration.demo_deprecation import run_deprecation_demo

        code = asyncio.run(run_deprecation_demo(as_json=as_json, keep=keep, state_dir=state_dir, day_seconds=day_seconds))
        raise typer.Exit(code)
    from model_migration.demo import run_demo

    code = asyncio.run(run_demo(as_json=as_json, keep=keep, state_dir=state_dir))
    raise typer.Exit(code)
