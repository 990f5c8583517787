"""A LocalStack Lambda runtime executor, `none`, for machines without Docker: functions are created (their code
stored, their state Active) but an invocation fails with a plain error instead of starting a container.

The deployment test needs only the functions to exist, with their mappings, permissions and schedules; the
handlers themselves are tested elsewhere (importing them from the Lambda package, and the integration suites).
"""

from __future__ import annotations

from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.lambda_.invocation.runtime_executor import LambdaRuntimeException, RuntimeExecutor

REFUSAL = "no Lambda runtime on this machine (LAMBDA_RUNTIME_EXECUTOR=none): functions are created, never run"


class NoRuntimeExecutor(RuntimeExecutor):
    """Prepares nothing; every attempt to start an execution environment fails."""

    def start(self, env_vars: dict[str, str]) -> None:
        """Refuse: there is no runtime to start."""
        raise LambdaRuntimeException(REFUSAL)

    def stop(self) -> None:
        """Nothing was started."""

    def get_address(self) -> str:
        """Refuse: there is no execution environment."""
        raise LambdaRuntimeException(REFUSAL)

    def get_endpoint_from_executor(self) -> str:
        """Refuse: there is no execution environment."""
        raise LambdaRuntimeException(REFUSAL)

    def get_runtime_endpoint(self) -> str:
        """Refuse: there is no execution environment."""
        raise LambdaRuntimeException(REFUSAL)

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        """Refuse: there is no runtime to invoke."""
        raise LambdaRuntimeException(REFUSAL)

    def get_logs(self) -> str:
        """No environment, no logs."""
        return ""

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        """Nothing to prepare: the Docker executor's download and image pull are what cannot happen here."""

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        """Nothing was prepared."""


class NoRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    """Registers the executor as `none`."""

    name = "none"

    def load(self, *args: object, **kwargs: object) -> type[RuntimeExecutor]:
        """The executor class LocalStack instantiates per execution environment."""
        return NoRuntimeExecutor
