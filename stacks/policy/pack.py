"""The CrossGuard policies of otelstack's pack: rules.py's checks, each a mandatory policy (see __main__)."""

from __future__ import annotations

from collections.abc import Callable

from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from stacks.policy import rules

Check = Callable[[str, rules.Props], list[str]]


def _resource_policy(name: str, description: str, check: Check) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in check(args.resource_type, args.props):
            report_violation(message, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate)


def _privileged(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    allow_list = args.get_config().get("allowList", list(rules.DEFAULT_ALLOW_LIST))
    for message in rules.privileged(args.resource_type, args.props, allow_list):
        report_violation(message, None)


def _network_policies(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for message in rules.workloads_without_policy((r.resource_type, r.props) for r in args.resources):
        report_violation(message, None)


POLICIES = [
    ResourceValidationPolicy(
        name="no-privileged-pods",
        description="No privileged container, added capability or host namespace outside the allow-list",
        validate=_privileged,
        config_schema=PolicyConfigSchema(
            properties={"allowList": {"type": "array", "items": {"type": "string"}}},
        ),
    ),
    _resource_policy(
        "requests-and-limits", "Every container requests and limits CPU and memory", rules.requests_and_limits
    ),
    _resource_policy(
        "no-insecure-tls", "No collector config turns TLS or its verification off outside dev", rules.insecure_tls
    ),
    _resource_policy("no-latest-images", "Every image is pinned by tag (not latest) or digest", rules.latest_images),
    StackValidationPolicy(
        name="network-policy-for-every-workload",
        description="Every workload's pods are selected by a NetworkPolicy of their own",
        validate=_network_policies,
    ),
]
