"""What `imagine-bot fleet` deploys, from its options and [fleet]; its start-up refusals."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from ray.serve.schema import (
    ApplicationStatus,
    ApplicationStatusOverview,
    DeploymentStatus,
    DeploymentStatusOverview,
    DeploymentStatusTrigger,
)

from bot.cli import main
from bot.config import FleetSettings
from bot.fleet.app import ingress_actor_options
from bot.fleet.main import (
    Teller,
    add_fleet_arguments,
    auth_hint,
    cluster_unreachable,
    deploy_failure,
    fleet_options,
    start_failures,
    troubles,
)
from bot.fleet.replica import deployment_options
from bot.fleet.spec import FleetSpec, SourceLoader, resource_shortfall
from tests.fleet.support import free_port


def args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_fleet_arguments(parser)
    return parser.parse_args(list(argv))


def spec(**fields: object) -> FleetSpec:
    return FleetSpec(models=("flux-schnell",), loader=SourceLoader(()), **fields)  # type: ignore[arg-type]


def test_the_ingress_prefers_the_node_it_is_given_and_may_run_elsewhere() -> None:
    options = ingress_actor_options("9e8d223c4edf")

    assert options["label_selector"] == {"ray.io/node-id": "9e8d223c4edf"}
    assert options["fallback_strategy"] == [{"label_selector": {}}]  # any node
    assert options["num_cpus"] == 0


def test_an_ingress_given_no_node_may_run_anywhere() -> None:
    assert ingress_actor_options(None) == {"num_cpus": 0}


def test_a_fixed_replica_count_is_deployed_without_autoscaling() -> None:
    options = deployment_options(spec(min_replicas=3, max_replicas=3, gpus_per_replica=1))

    assert options["num_replicas"] == 3
    assert "autoscaling_config" not in options
    assert options["ray_actor_options"] == {"num_gpus": 1, "num_cpus": 1.0}


def test_replica_bounds_autoscale_on_ongoing_requests() -> None:
    options = deployment_options(spec(min_replicas=1, max_replicas=4, max_batch_size=4))

    assert options["autoscaling_config"] == {
        "min_replicas": 1, "max_replicas": 4, "initial_replicas": 1,
        "target_ongoing_requests": 4,
        "upscale_delay_s": 30.0, "downscale_delay_s": 600.0,
        "metrics_interval_s": 10.0, "look_back_period_s": 30.0,
    }
    assert options["max_ongoing_requests"] == 8  # a batch running and the next one gathering


def test_autoscaling_options_are_ones_serve_accepts() -> None:
    from ray.serve.config import AutoscalingConfig

    config = AutoscalingConfig(**spec(min_replicas=1, max_replicas=2).autoscaling() or {})

    assert (config.upscale_delay_s, config.look_back_period_s) == (30.0, 30.0)


def test_serve_checks_each_replica_as_often_as_the_spec_says() -> None:
    assert deployment_options(spec())["health_check_period_s"] == 10.0  # Serve's default
    assert deployment_options(spec(health_check_period_s=1))["health_check_period_s"] == 1


def test_a_health_check_period_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="health_check_period_s"):
        spec(health_check_period_s=0)


def test_a_stopping_replica_checks_for_requests_as_often_as_the_spec_says() -> None:
    assert deployment_options(spec())["graceful_shutdown_wait_loop_s"] == 0.5
    assert deployment_options(spec(drain_check_s=0.2))["graceful_shutdown_wait_loop_s"] == 0.2


def test_a_drain_check_of_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="drain_check_s"):
        spec(drain_check_s=0)


def test_a_negative_scaling_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="scaling delays"):
        spec(min_replicas=1, max_replicas=2, downscale_delay_s=-1)


def test_a_cluster_with_enough_gpus_and_cpus_in_all_lacks_nothing() -> None:
    fleet = spec(min_replicas=2, max_replicas=4, gpus_per_replica=1, cpus_per_replica=2)

    assert resource_shortfall(fleet, [{"GPU": 2.0, "CPU": 4.0}]) is None


def test_replicas_sharing_gpus_need_only_their_shares() -> None:
    fleet = spec(min_replicas=3, max_replicas=3, gpus_per_replica=0.1, cpus_per_replica=0)

    assert resource_shortfall(fleet, [{"GPU": 0.3}]) is None  # 3 x 0.1 is a hair over 0.3


def test_a_cluster_without_a_gpu_is_told_how_to_run_on_the_cpu() -> None:
    assert resource_shortfall(spec(), [{"CPU": 8.0}]) == (
        "the 1 replica to start needs 1 GPU and the cluster has 0; give it less "
        "(--gpus-per-replica, or 0 to run on the CPU)")


def test_the_shortfall_counts_the_minimum_replicas_of_every_model() -> None:
    fleet = FleetSpec(models=("flux-schnell", "kolors"), loader=SourceLoader(()),
                      min_replicas=2, max_replicas=8)

    assert resource_shortfall(fleet, [{"GPU": 2.0, "CPU": 4.0}, {"GPU": 1.0, "CPU": 4.0}]) == (
        "the 4 replicas to start (2 per model) need 4 GPUs (1 each) and the cluster has 3; "
        "start fewer (--replicas, --min-replicas) or give each less (--gpus-per-replica, or 0 "
        "to run on the CPU)")


def test_too_few_cpus_are_a_shortfall_too() -> None:
    fleet = spec(min_replicas=3, max_replicas=3, gpus_per_replica=0, cpus_per_replica=1)

    assert resource_shortfall(fleet, [{"CPU": 2.0}]) == (
        "the 3 replicas to start need 3 CPUs (1 each) and the cluster has 2; start fewer "
        "(--replicas, --min-replicas) or give each less (--cpus-per-replica)")


def test_replicas_spread_over_machines_fit() -> None:
    fleet = spec(min_replicas=2, max_replicas=2, gpus_per_replica=1, cpus_per_replica=2)

    assert resource_shortfall(fleet, [{"GPU": 1.0, "CPU": 2.0}, {"GPU": 1.0, "CPU": 2.0}]) is None


def test_a_replica_bigger_than_every_machine_is_a_shortfall_though_the_totals_suffice() -> None:
    fleet = spec(gpus_per_replica=2, cpus_per_replica=1)

    assert resource_shortfall(fleet, [{"GPU": 1.0, "CPU": 8.0}, {"GPU": 1.0, "CPU": 8.0}]) == (
        "no machine in the cluster has room for the 1 replica to start, which needs 2 GPUs and "
        "1 CPU on one machine; give it less (--gpus-per-replica, or 0 to run on the CPU; "
        "--cpus-per-replica)")


def test_a_replica_takes_its_gpu_and_its_cpu_on_the_same_machine() -> None:
    fleet = spec(gpus_per_replica=1, cpus_per_replica=1)

    assert resource_shortfall(fleet, [{"GPU": 1.0, "CPU": 0.0}, {"CPU": 4.0}]) is not None


def test_only_whole_replicas_count_on_each_machine() -> None:
    fleet = spec(min_replicas=3, max_replicas=3, gpus_per_replica=1, cpus_per_replica=0)

    assert resource_shortfall(fleet, [{"GPU": 1.5}, {"GPU": 1.5}]) == (
        "the cluster's machines have room for 2 of the 3 replicas to start, each of which needs "
        "1 GPU on one machine; start fewer (--replicas, --min-replicas) or give each less "
        "(--gpus-per-replica, or 0 to run on the CPU)")


def deployment(status: DeploymentStatus, message: str = "",
               **replica_states: int) -> DeploymentStatusOverview:
    """A deployment as Serve's status reports it."""
    return DeploymentStatusOverview(status=status, message=message,
                                    replica_states=replica_states,
                                    status_trigger=DeploymentStatusTrigger.UNSPECIFIED)


def application(status: ApplicationStatus, message: str = "",
                **deployments: DeploymentStatusOverview) -> ApplicationStatusOverview:
    """An application as Serve's status reports it."""
    return ApplicationStatusOverview(status=status, message=message, last_deployed_time_s=0.0,
                                     deployments=deployments)


def test_a_failed_deployment_is_told_by_the_exception_its_replicas_raised() -> None:
    # The shape of what Serve 2.60 reported for a model folder with a truncated weights file.
    app = application(
        ApplicationStatus.DEPLOY_FAILED, "Failed to update the deployments ['flux-schnell'].",
        **{"flux-schnell": deployment(DeploymentStatus.DEPLOY_FAILED, (
            "The deployment failed to start 3 times in a row. ... Error:\n"
            "RuntimeError: Traceback (most recent call last):\n"
            '  File "bot/worker/pipelines.py", line 99, in load_pipeline\n'
            "    raise SourceError(\n"
            "bot.worker.sources.SourceError: flux-schnell: could not load /m/flux: "
            "OSError: Unable to load weights\n")),
           "ingress": deployment(DeploymentStatus.HEALTHY)},
    )

    assert deploy_failure(app) == ("flux-schnell: could not load /m/flux: OSError: Unable to "
                                   "load weights")


def retrying(ip: str = "10.77.0.2") -> ApplicationStatusOverview:
    """The shape of what Serve 2.60 reported with the model folder missing on one of two
    machines (bench/two_hosts.py): the other machine's replica had started."""
    return application(
        ApplicationStatus.DEPLOYING,
        **{"flux-schnell": deployment(DeploymentStatus.UPDATING, (
            "A replica failed to start with exception. Retrying. Error:\n"
            "\x1b[36mray::ServeReplica:imagine:flux-schnell.initialize_and_get_metadata()"
            f"\x1b[39m (pid=25101, ip={ip}, actor_id=d3af87)\n"
            '  File "bot/worker/pipelines.py", line 99, in load_pipeline\n'
            "    raise SourceError(\n"
            "bot.worker.sources.SourceError: flux-schnell: could not load /m/flux: "
            "ValueError: neither a valid local path nor a valid repo id.\n"),
            RUNNING=1, STARTING=1),
           "ingress": deployment(DeploymentStatus.HEALTHY, RUNNING=1)},
    )


def healthy() -> ApplicationStatusOverview:
    """A running application whose deployments are all healthy."""
    return application(ApplicationStatus.RUNNING,
                        **{"flux-schnell": deployment(DeploymentStatus.HEALTHY, RUNNING=2)})


def test_a_replica_serve_retries_is_told_by_its_machine_and_the_exception_it_raised() -> None:
    assert start_failures(retrying()) == [
        "a replica of flux-schnell failed to start on 10.77.0.2: flux-schnell: could not load "
        "/m/flux: ValueError: neither a valid local path nor a valid repo id"]


def test_a_start_failure_is_told_once_while_serve_retries_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    teller = Teller()

    for _ in range(3):
        teller.tell(troubles(retrying()))

    assert capsys.readouterr().err.splitlines() == [
        "imagine-bot fleet: a replica of flux-schnell failed to start on 10.77.0.2: "
        "flux-schnell: could not load /m/flux: ValueError: neither a valid local path nor a "
        "valid repo id; Serve keeps retrying it (Ctrl-C stops)"]


def test_a_start_failure_that_comes_back_after_the_fleet_recovered_is_told_again(
        capsys: pytest.CaptureFixture[str]) -> None:
    teller = Teller()

    for app in (retrying(), healthy(), retrying()):
        teller.tell(troubles(app))

    assert len(capsys.readouterr().err.splitlines()) == 2


def test_a_start_failure_on_another_machine_is_told_too(
        capsys: pytest.CaptureFixture[str]) -> None:
    teller = Teller()

    for app in (retrying("10.77.0.2"), retrying("10.77.0.3")):
        teller.tell(troubles(app))

    assert [line.split(": ")[1] for line in capsys.readouterr().err.splitlines()] == [
        "a replica of flux-schnell failed to start on 10.77.0.2",
        "a replica of flux-schnell failed to start on 10.77.0.3"]


def test_a_cluster_that_lost_room_for_the_replicas_is_told_with_the_shortfall() -> None:
    fleet = spec(min_replicas=2, max_replicas=2, gpus_per_replica=1, cpus_per_replica=0)
    shortfall = resource_shortfall(fleet, [{"GPU": 1}])  # one of two GPU machines left

    assert troubles(healthy(), shortfall) == [
        "the cluster lost room: the 2 replicas to start need 2 GPUs (1 each) and the cluster "
        "has 1; start fewer (--replicas, --min-replicas) or give each less (--gpus-per-replica, "
        "or 0 to run on the CPU); the missing replicas start once it has room again"]


def test_replicas_still_starting_without_a_failure_are_not_told() -> None:
    app = application(ApplicationStatus.DEPLOYING,
                      **{"flux-schnell": deployment(DeploymentStatus.UPDATING, STARTING=2)})

    assert start_failures(app) == []


def test_a_failed_application_without_a_failed_deployment_is_told_by_its_own_message() -> None:
    app = application(ApplicationStatus.DEPLOY_FAILED, "Unexpected error\nmore")

    assert deploy_failure(app) == "Unexpected error"


def test_the_command_line_wins_over_the_fleet_section() -> None:
    configured = FleetSettings(models={"chroma": "/m/chroma"}, replicas=2, gpus_per_replica=0.5,
                               port=9000)

    options = fleet_options(args("--model", "flux-schnell", "--max-replicas", "6"), configured)

    assert options.models == ("flux-schnell",)
    assert (options.min_replicas, options.max_replicas) == (1, 6)
    assert (options.gpus_per_replica, options.port) == (0.5, 9000)


def test_the_fleet_section_alone_sets_everything() -> None:
    configured = FleetSettings(models={"chroma": "/m/chroma"}, min_replicas=2, max_replicas=5,
                               batch_wait_s=0.05, address="auto")

    options = fleet_options(args(), configured)

    assert options.models == ("chroma=/m/chroma",)
    assert (options.min_replicas, options.max_replicas) == (2, 5)
    assert (options.batch_wait_s, options.address) == (0.05, "auto")


def test_a_missing_model_folder_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGINE_CONFIG", "/nonexistent/config.toml")

    code = main(["fleet", "--model", "chroma=/nonexistent/chroma"])

    assert code == 2
    assert capsys.readouterr().err == (
        "imagine-bot fleet: chroma: folder /nonexistent/chroma does not exist\n")


def test_listening_beyond_loopback_without_a_key_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, flux_dir: Path
) -> None:
    monkeypatch.setenv("IMAGINE_CONFIG", "/nonexistent/config.toml")
    monkeypatch.delenv("IMAGINE_WORKER_API_KEY", raising=False)

    code = main(["fleet", "--model", f"flux-schnell={flux_dir}", "--host", "0.0.0.0"])

    assert code == 2
    assert "without IMAGINE_WORKER_API_KEY" in capsys.readouterr().err


def test_an_address_where_nothing_listens_is_one_line_and_exit_2_at_once(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, flux_dir: Path
) -> None:
    monkeypatch.setenv("IMAGINE_CONFIG", "/nonexistent/config.toml")
    address = f"127.0.0.1:{free_port()}"  # nothing listens there

    code = main(["fleet", "--model", f"flux-schnell={flux_dir}", "--address", address])

    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"imagine-bot fleet: could not reach the Ray cluster at {address}: "
                          "nothing answers there")
    assert err.count("\n") == 1


def test_an_address_ray_resolves_on_this_machine_is_left_to_ray() -> None:
    assert cluster_unreachable("auto") is None
    assert cluster_unreachable("") is None


def test_a_failed_join_by_address_suggests_rays_token_when_none_is_asked_for(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)

    assert "RAY_AUTH_MODE=token" in auth_hint("10.0.0.5:6379")
    assert auth_hint("auto") == ""  # Ray finds the local token by itself there


def test_a_failed_join_with_the_token_asked_for_suggests_nothing_more(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "token")

    assert auth_hint("10.0.0.5:6379") == ""
