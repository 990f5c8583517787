"""`lorafoundry`: run the embedded stack (`up`) or the whole user journey against it (`demo`)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from rich.console import Console
from rich.table import Table

from infra.local.stack import DEFAULT_STATE_FILE, EmbeddedStack, StackInfo, api_healthy

# Wide enough for the timing tables when output is not a terminal (CI logs, pipes).
console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)


def _print_ready(name: str, address: str, ms: float) -> None:
    console.print(f"  [green]ready[/green] {name:<28} {address:<40} [dim]{ms / 1000:5.1f}s[/dim]")


def _stack_from_args(args: argparse.Namespace) -> EmbeddedStack:
    return EmbeddedStack(
        host=args.host,
        api_port=args.api_port,
        workers=args.workers,
        log_dir=Path(args.log_dir) if args.log_dir else None,
        embedded_aws=args.aws == "embedded",
        embedded_kafka=args.kafka == "embedded",
    )


def _print_summary(info: StackInfo, state_file: Path) -> None:
    table = Table(title="LoRA Foundry is up", show_header=False, title_justify="left")
    table.add_row("API", info.api_url)
    table.add_row("OpenAPI docs", f"{info.api_url}/docs")
    table.add_row("AWS endpoint", info.aws_endpoint_url or "AWS (default endpoints)")
    table.add_row("Kafka", info.kafka_bootstrap_servers)
    table.add_row("Logs", info.log_dir)
    table.add_row("Dev API key", info.api_key)
    if info.signing_secret:
        table.add_row("Dev signing secret", info.signing_secret)
    # Not printed: it opens every tenant's keys. The operator commands read it from the state file.
    table.add_row("Operator token", f"in {state_file} (lorafoundry keys, tenants, status use it)")
    console.print(table)
    console.print(
        f'Try: curl -s -X POST {info.api_url}/v1/images/generate -H "Authorization: Bearer {info.api_key}" '
        '-H "Content-Type: application/json" -d \'{"modelId": "tiny-sd", "prompt": "a red fox"}\''
    )


def cmd_up(args: argparse.Namespace) -> int:
    """Start the stack, print where everything listens, run until Ctrl-C or the storage or the broker dies
    (other components are restarted)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stack = _stack_from_args(args)
    console.print(f"Starting LoRA Foundry (logs in {stack.log_dir})")
    state_file = Path(args.state_file)
    code = 0
    try:
        info = stack.start(_print_ready)
        info.save(state_file)
        _print_summary(info, state_file)
        console.print("Press Ctrl-C to stop.")
        # A component that dies is restarted with backoff, and the stack keeps serving; only the storage or
        # the broker dying ends it.
        fatal = stack.supervisor(lambda message: console.print(f"[yellow]supervisor:[/yellow] {message}")).run(stop)
        if fatal is not None:
            tail = next((p.log_tail() for p in stack.processes if p.name == fatal.name), "")
            console.print(
                f"[red]{fatal.name} died ({fatal.reason})[/red]: the stack cannot go on without it; "
                f"last log lines:\n{tail}"
            )
            code = 1
    except Exception as exc:
        console.print(f"[red]start-up failed:[/red] {exc}")
        code = 1
    finally:
        console.print("Stopping...")
        stack.stop()
        saved = StackInfo.load(state_file)
        if saved is not None and saved.pid == os.getpid():
            state_file.unlink(missing_ok=True)
        console.print("Stopped; nothing left running.")
    return code


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the user journey against a running stack, or bring one up for the length of the demo."""
    from infra.local.demo import run_demo

    info = StackInfo.load(Path(args.state_file))
    stack = None
    if info is None or not api_healthy(info.api_url):
        stack = _stack_from_args(args)
        console.print(f"No running stack found: starting one (logs in {stack.log_dir})")
        try:
            info = stack.start(_print_ready)
        except Exception as exc:
            console.print(f"[red]start-up failed:[/red] {exc}")
            stack.stop()
            return 1
    else:
        console.print(f"Using the running stack at {info.api_url}")
    try:
        return run_demo(console, info, Path(args.output), count=args.count)
    finally:
        if stack is not None:
            console.print("Stopping the stack the demo started...")
            stack.stop()


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="lorafoundry", description="LoRA Foundry: the embedded stack, and the AWS deployment."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def stack_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--host", default="127.0.0.1", help="address every component binds to")
        p.add_argument("--api-port", type=int, default=None, help="API port (default: a free one)")
        p.add_argument("--workers", type=int, default=1, help="generator workers to run")
        p.add_argument("--log-dir", default=None, help="where component logs go (default: a temp dir)")
        p.add_argument(
            "--aws",
            choices=["embedded", "external"],
            default="embedded",
            help="embedded: start moto; external: use LF_AWS_ENDPOINT_URL etc. (LocalStack, AWS)",
        )
        p.add_argument(
            "--kafka",
            choices=["embedded", "external"],
            default="embedded",
            help="embedded: start Tansu; external: use LF_KAFKA_BOOTSTRAP_SERVERS",
        )
        p.add_argument("--state-file", default=str(DEFAULT_STATE_FILE), help=argparse.SUPPRESS)

    up = sub.add_parser("up", help="start the embedded stack and run until Ctrl-C")
    stack_options(up)
    up.set_defaults(func=cmd_up)

    demo = sub.add_parser("demo", help="run the whole user journey and save the images")
    stack_options(demo)
    demo.add_argument("--output", default="demo-output", help="folder for the generated images")
    demo.add_argument("--count", type=int, default=3, help="how many generation requests to submit")
    demo.set_defaults(func=cmd_demo)

    from infra.admin_commands import register as register_admin
    from infra.deploy.commands import register as register_deploy
    from infra.status_command import register as register_status

    register_deploy(sub)
    register_admin(sub)
    register_status(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `lorafoundry` command."""
    args = build_parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
