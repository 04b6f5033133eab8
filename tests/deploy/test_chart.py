"""
The Helm chart, rendered by Helm's own SDK and validated against Kubernetes'
schemas, then read for what it means: which workload, which peers, which
volumes, which secrets, which probes.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from typing import Any

import helm_python
import pytest
import yaml

from revenge.config import config_keys, load_config
from revenge.config._keys import schema as config_schema
from revenge.metrics import Metrics

from ._chart import (
    CHART_DIR,
    CRD_KINDS,
    FULLNAME,
    KUBERNETES_VERSION,
    NAMESPACE,
    OLDEST_KUBERNETES_VERSION,
    RELEASE,
    Doc,
    Rendered,
    kubelet_environment,
    merge,
    parse_files,
    render,
    render_files,
    seconds,
    validate_manifest,
)
from .scenarios import EVERYTHING, NFS_MEDIA, RAFT3, SCENARIOS, SECRET_SENTINELS

CONFIG_ENV = {env for _, env in config_keys()}
SECRET_ENV = {key.env for key in config_schema().keys if key.secret or key.url_password}
HEADLESS = f"{FULLNAME}-raft"
SELECTOR = {"app.kubernetes.io/name": "revenge", "app.kubernetes.io/instance": RELEASE}


def scenario(name: str) -> Rendered:
    return render(SCENARIOS[name])


def revenge_names(text: str) -> set[str]:
    return set(re.findall(r"\bREVENGE_[A-Z0-9_]+", text))


# --- every manifest is valid Kubernetes --------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_manifest_validates_strictly(name):
    rendered = scenario(name)
    assert rendered.manifests
    for manifest in rendered.manifests:
        doc = manifest.doc
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue  # checked structurally below
        for version in (KUBERNETES_VERSION, OLDEST_KUBERNETES_VERSION):
            validate_manifest(doc, version)
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE, manifest.template
        assert "namespace" not in doc["metadata"], "Helm sets the namespace"


def test_strict_validation_catches_a_misspelt_field():
    # The validator itself must be able to fail: a typo in a pod spec.
    workload = json.loads(json.dumps(scenario("defaults").workload))
    workload["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(Exception, match="readinesProbe"):
        validate_manifest(workload)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_names_are_unique_per_kind(name):
    seen = [(m.kind, m.name) for m in scenario(name).manifests]
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize(
    "values_files",
    [(), ("values-cluster.yaml",), ("values-cluster.yaml", "examples/kubernetes-nfs.yaml"),
     ("examples/k3s.yaml", "examples/minio.yaml")],
    ids=lambda files: "+".join(files) or "defaults",
)
def test_helm_lint_is_clean(values_files):
    values = merge(*(yaml.safe_load((CHART_DIR / f).read_text()) for f in values_files))
    report = helm_python.lint(
        CHART_DIR, values, strict=True, namespace=NAMESPACE, kube_version="v" + KUBERNETES_VERSION
    )
    assert report["errors"] == []
    # Severity 2 is a warning, 3 an error; 1 (info) is only "icon is recommended".
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert serious == []


# --- Deployment or StatefulSet -----------------------------------------------


def test_defaults_are_one_node_in_a_deployment():
    rendered = scenario("defaults")
    assert rendered.of_kind("StatefulSet") == []
    deployment = rendered.one("Deployment", FULLNAME)
    assert deployment["spec"]["replicas"] == 1
    # One ReadWriteOnce volume with SQLite: never two pods at once.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    env = rendered.env()
    assert "REVENGE_ELECTION_BACKEND" not in env
    assert "REVENGE_DATABASE_URL" not in env  # SQLite under /data
    assert rendered.env_value("REVENGE_STORAGE_BACKEND") == "local"
    assert rendered.env_value("REVENGE_DATA_DIR") == "/data"
    assert [p["name"] for p in rendered.container["ports"]] == ["http"]
    services = rendered.of_kind("Service")
    assert [s["metadata"]["name"] for s in services] == [FULLNAME]
    claim = rendered.one("PersistentVolumeClaim", f"{FULLNAME}-data")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in claim["spec"]  # the cluster's default class
    data = {v["name"]: v for v in rendered.pod_spec["volumes"]}["data"]
    assert data["persistentVolumeClaim"]["claimName"] == f"{FULLNAME}-data"


def test_without_persistence_data_is_an_empty_dir_and_updates_roll():
    rendered = scenario("no-persistence")
    assert rendered.of_kind("PersistentVolumeClaim") == []
    volumes = {v["name"]: v for v in rendered.pod_spec["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
    assert rendered.workload["spec"]["strategy"]["type"] == "RollingUpdate"


def test_an_existing_data_claim_is_used_not_created():
    rendered = scenario("single-existing-data-claim")
    assert rendered.of_kind("PersistentVolumeClaim") == []
    volumes = {v["name"]: v for v in rendered.pod_spec["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "revenge-data"


@pytest.mark.parametrize("name", ["raft-3", "raft-3-nfs-existing-secrets", "everything"])
def test_raft_switches_to_a_statefulset_with_a_headless_service(name):
    rendered = scenario(name)
    assert rendered.of_kind("Deployment") == []
    statefulset = rendered.one("StatefulSet", FULLNAME)
    spec = statefulset["spec"]
    assert spec["replicas"] == rendered.values["replicaCount"]
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["serviceName"] == HEADLESS
    assert spec["selector"]["matchLabels"] == SELECTOR

    headless = rendered.one("Service", HEADLESS)["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True
    assert headless["selector"] == SELECTOR
    assert headless["ports"] == [{"name": "raft", "port": 7000, "targetPort": "raft", "protocol": "TCP"}]

    ports = {p["name"]: p["containerPort"] for p in rendered.container["ports"]}
    assert ports["raft"] == 7000
    env = rendered.env()
    assert env["REVENGE_ELECTION_BACKEND"]["value"] == "raft"
    assert env["REVENGE_RAFT_BIND_ADDR"]["value"] == "0.0.0.0:7000"
    assert env["REVENGE_RAFT_DATA_DIR"]["value"].startswith("/data/")
    # The main Service is not headless and does not publish unready pods.
    main = rendered.one("Service", FULLNAME)["spec"]
    assert main.get("clusterIP") != "None"
    assert "publishNotReadyAddresses" not in main


def test_raft_pods_keep_their_journal_on_their_own_claims():
    statefulset = scenario("raft-3").workload
    (template,) = statefulset["spec"]["volumeClaimTemplates"]
    assert template["metadata"]["name"] == "data"
    assert template["spec"]["accessModes"] == ["ReadWriteOnce"]
    volumes = [v["name"] for v in scenario("raft-3").pod_spec["volumes"]]
    assert "data" not in volumes  # comes from the claim template
    # Without persistence the journal is in an emptyDir.
    assert "volumeClaimTemplates" not in scenario("raft-3-no-persistence").workload["spec"]
    volumes = {v["name"]: v for v in scenario("raft-3-no-persistence").pod_spec["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}
    # A chosen class reaches the claim template.
    (template,) = scenario("everything").workload["spec"]["volumeClaimTemplates"]
    assert template["spec"]["storageClassName"] == "fast"


def test_more_than_one_replica_spreads_over_nodes_unless_told_otherwise():
    affinity = scenario("raft-3").pod_spec["affinity"]["podAntiAffinity"]
    (term,) = affinity["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == SELECTOR
    assert "affinity" not in scenario("defaults").pod_spec
    custom = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]}}}
    assert render(merge(RAFT3, {"affinity": custom})).pod_spec["affinity"] == custom


# --- Raft peers: stable DNS names, the others only -----------------------------


def _member(ordinal: int) -> str:
    return f"{FULLNAME}-{ordinal}.{HEADLESS}.{NAMESPACE}.svc.cluster.local:7000"


def _server_environment(rendered: Rendered, pod: str) -> dict[str, str]:
    """Run the container's command as the kubelet would, up to the exec of
    the server, and return the REVENGE_* environment the server gets."""
    container = rendered.container
    command, args = container["command"], container["args"]
    assert command[:2] == ["/bin/sh", "-ec"]
    env = kubelet_environment(container["env"], {"metadata.name": pod})
    probe = [sys.executable, "-c",
             "import json, os, sys; json.dump({'argv': sys.argv[1:], 'env': dict(os.environ)}, sys.stdout)"]
    # The script execs "$@"; replace the server with a probe that reports
    # what it was given, keeping the server's arguments after it.
    result = subprocess.run(
        [*command, *probe, *args], env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    reported = json.loads(result.stdout)
    assert reported["argv"] == args
    return {k: v for k, v in reported["env"].items() if k.startswith("REVENGE_")}


@pytest.mark.parametrize("replicas", [1, 3, 5])
def test_each_pod_gets_the_other_members_as_peers(replicas):
    rendered = render(merge(RAFT3, {"replicaCount": replicas}))
    env = rendered.env()
    assert env["RAFT_MEMBERS"]["value"].split(",") == [_member(i) for i in range(replicas)]
    # The pod's own name comes from the downward API, defined before use.
    names = list(env)
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    for dependent in ("REVENGE_NODE_ID", "REVENGE_RAFT_ADVERTISE_ADDR"):
        assert "$(POD_NAME)" in env[dependent]["value"]
        assert names.index("POD_NAME") < names.index(dependent)
    assert "REVENGE_RAFT_PEERS" not in env  # set per pod by the command

    for ordinal in range(replicas):
        pod = f"{FULLNAME}-{ordinal}"
        server_env = _server_environment(rendered, pod)
        assert server_env["REVENGE_NODE_ID"] == pod
        assert server_env["REVENGE_RAFT_ADVERTISE_ADDR"] == _member(ordinal)
        expected = [_member(i) for i in range(replicas) if i != ordinal]
        if expected:
            assert server_env["REVENGE_RAFT_PEERS"].split(",") == expected
        else:
            # One member: no peers, and no empty variable either.
            assert "REVENGE_RAFT_PEERS" not in server_env


def test_a_pod_outside_the_member_list_refuses_to_start():
    rendered = scenario("raft-3")
    container = rendered.container
    env = kubelet_environment(container["env"], {"metadata.name": f"{FULLNAME}-7"})
    result = subprocess.run(
        [*container["command"], "true"], env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0
    assert "not in RAFT_MEMBERS" in result.stderr


def test_peer_names_follow_namespace_release_and_cluster_domain():
    rendered = render(merge(RAFT3, {"clusterDomain": "corp.internal"}), release="vids", namespace="tv")
    members = rendered.env()["RAFT_MEMBERS"]["value"].split(",")
    assert members == [f"vids-revenge-{i}.vids-revenge-raft.tv.svc.corp.internal:7000" for i in range(3)]
    assert rendered.workload["spec"]["serviceName"] == "vids-revenge-raft"


# --- the server's environment is made of real configuration keys -------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_revenge_variable_is_a_config_key_and_never_empty(name):
    rendered = scenario(name)
    containers = list(rendered.containers())
    assert containers
    for container in containers:
        for entry in container.get("env", []):
            if not entry["name"].startswith("REVENGE_"):
                continue
            assert entry["name"] in CONFIG_ENV, f"{entry['name']} is not a configuration key"
            if "value" in entry:
                # An empty REVENGE_* variable counts as set: leave it out instead.
                assert str(entry["value"]) != "", entry["name"]
            else:
                assert set(entry["valueFrom"]) <= {"secretKeyRef", "fieldRef"}
        # Names a command exports (REVENGE_RAFT_PEERS) count too.
        for word in container.get("command", []) + container.get("args", []):
            assert revenge_names(word) <= CONFIG_ENV
    # And nothing anywhere in the output names a variable that does not exist.
    everything = "\n".join(rendered.files.values())
    assert revenge_names(everything) <= CONFIG_ENV


def test_values_reach_the_server_as_configuration():
    env = scenario("everything").env()
    expected = {
        "REVENGE_SERVER_LISTEN": "tcp:8096",
        "REVENGE_SERVER_METRICS_LISTEN": "tcp:9090",
        "REVENGE_SERVER_SHUTDOWN_GRACE": "40s",
        "REVENGE_STORAGE_BACKEND": "s3",
        "REVENGE_STORAGE_S3_BUCKET": "revenge",
        "REVENGE_STORAGE_S3_REGION": "us-east-1",
        "REVENGE_STORAGE_S3_USE_PATH_STYLE": "false",
        "REVENGE_MEDIA_MOVIE_PATHS": "/media/movies",
        "REVENGE_MEDIA_TV_PATHS": "/media/tv,/media/kids-tv",
        "REVENGE_MEDIA_MUSIC_PATHS": "/media/music",
        "REVENGE_JOBS_CLEANUP_INTERVAL": "900s",
        "REVENGE_JOBS_CLEANUP_ACTIVITY_RETENTION": "30d",
    }
    assert {k: env[k].get("value") for k in expected} == expected
    assert env["TZ"] == {"name": "TZ", "value": "Europe/Paris"}  # extraEnv
    s3 = scenario("raft-3").env()
    assert s3["REVENGE_STORAGE_S3_ENDPOINT"]["value"] == "http://minio.minio.svc:9000"
    assert s3["REVENGE_STORAGE_S3_USE_PATH_STYLE"]["value"] == "true"
    # Unset values stay unset: the server's defaults apply.
    for absent in ("REVENGE_STORAGE_S3_ENDPOINT", "REVENGE_JOBS_CLEANUP_ACTIVITY_RETENTION",
                   "REVENGE_SERVER_METRICS_LISTEN", "REVENGE_MEDIA_MOVIE_PATHS"):
        assert absent not in scenario("s3-credential-chain").env()
    chain = scenario("s3-credential-chain").env()
    assert chain["REVENGE_STORAGE_S3_REGION"]["value"] == "eu-west-3"
    assert "REVENGE_STORAGE_S3_ACCESS_KEY_ID" not in chain  # AWS default chain (IRSA)


def test_the_chart_environment_loads_as_a_valid_configuration(tmp_path, monkeypatch):
    """The rendered environment, given to the real config loader, is accepted
    and means what the values said (stand-ins replace secretKeyRefs)."""
    rendered = scenario("everything")
    env = kubelet_environment(rendered.container["env"], {"metadata.name": f"{FULLNAME}-2"})
    env = {k: v for k, v in env.items() if k.startswith("REVENGE_")}
    for name, value in env.items():
        if value.startswith("<from "):
            # The raft secret must be as strong as the one the chart generates.
            env[name] = {
                "REVENGE_DATABASE_URL": "postgresql://u:p@db/x",
                "REVENGE_RAFT_SECRET": "stand-in-7Vq2hZt9wKx3mPb0LrYcN5sJdE8uGfA1oTiW4kQ",
            }.get(name, "stand-in")
    env["REVENGE_RAFT_PEERS"] = _member(0)  # what the command exports
    monkeypatch.chdir(tmp_path)  # no revenge.yaml to pick up
    for name in [n for n in os.environ if n.startswith("REVENGE_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = load_config(None)
    assert config.node_id == f"{FULLNAME}-2"
    assert config.server.shutdown_grace == 40
    assert config.server.metrics_listen == "tcp:9090"
    assert config.data_dir == "/data"
    assert config.election.backend == "raft"
    assert config.raft.advertise_addr == _member(2)
    assert config.raft.data_dir == "/data/raft"
    assert config.media.tv_paths == ("/media/tv", "/media/kids-tv")
    assert config.jobs.cleanup.interval == 900
    assert config.jobs.cleanup.activity_retention == 30 * 86400
    assert config.storage.backend == "s3"
    assert config.storage.s3.bucket == "revenge"


# --- media: read-only at /media, three ways to attach it ---------------------


def _media(rendered: Rendered) -> tuple[Doc, Doc]:
    (volume,) = [v for v in rendered.pod_spec["volumes"] if v["name"] == "media"]
    (mount,) = [m for m in rendered.container["volumeMounts"] if m["name"] == "media"]
    assert mount == {"name": "media", "mountPath": "/media", "readOnly": True}
    return volume, mount


def test_nfs_media_is_an_nfs_volume_mounted_read_only():
    volume, _ = _media(scenario("nfs"))
    assert volume["nfs"] == {"server": "nfs.example.internal", "path": "/export/media", "readOnly": True}
    assert scenario("nfs").of_kind("PersistentVolume") == []
    # Even when the export is declared writable, the mount stays read-only.
    writable = render(merge(NFS_MEDIA, {"media": {"persistence": {"nfs": {"readOnly": False}}}}))
    _media(writable)


def test_an_existing_media_claim_is_mounted_read_only_and_not_created():
    rendered = scenario("existing-claim")
    volume, _ = _media(rendered)
    assert volume["persistentVolumeClaim"] == {"claimName": "media-ro", "readOnly": True}
    assert rendered.of_kind("PersistentVolume") == []
    assert [c["metadata"]["name"] for c in rendered.of_kind("PersistentVolumeClaim")] == [f"{FULLNAME}-data"]


def test_the_pv_template_binds_a_read_only_many_claim_to_an_nfs_volume():
    rendered = scenario("pv-template")
    assert "revenge/templates/media-pv.yaml" in {m.template for m in rendered.manifests}
    volume = rendered.one("PersistentVolume")
    claim = rendered.one("PersistentVolumeClaim", f"{FULLNAME}-media")
    assert volume["metadata"]["name"] == f"{NAMESPACE}-{FULLNAME}-media"
    assert volume["spec"]["nfs"] == {"server": "nfs.example.internal", "path": "/export/media", "readOnly": True}
    assert volume["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert volume["spec"]["capacity"] == {"storage": "2Ti"}
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert volume["spec"]["claimRef"] == {"namespace": NAMESPACE, "name": f"{FULLNAME}-media"}
    assert claim["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert claim["spec"]["volumeName"] == volume["metadata"]["name"]
    assert claim["spec"]["storageClassName"] == volume["spec"]["storageClassName"] == ""
    pod_volume, _ = _media(rendered)
    assert pod_volume["persistentVolumeClaim"] == {"claimName": f"{FULLNAME}-media", "readOnly": True}


def test_a_media_claim_without_nfs_is_provisioned_by_its_class():
    rendered = scenario("dynamic-media-claim")
    assert rendered.of_kind("PersistentVolume") == []
    claim = rendered.one("PersistentVolumeClaim", f"{FULLNAME}-media")
    assert claim["spec"]["storageClassName"] == "cephfs"
    assert claim["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert "volumeName" not in claim["spec"]
    _media(rendered)


def test_no_media_volume_by_default():
    rendered = scenario("defaults")
    assert "media" not in [v["name"] for v in rendered.pod_spec["volumes"]]
    assert "/media" not in [m["mountPath"] for m in rendered.container["volumeMounts"]]
    assert "No media volume" in rendered.notes


# --- secrets only in Secret objects ------------------------------------------


def _decoded_secrets(rendered: Rendered) -> dict[str, dict[str, str]]:
    return {
        s["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in s.get("data", {}).items()}
        for s in rendered.of_kind("Secret")
    }


def test_inline_secrets_appear_only_inside_secret_objects():
    rendered = scenario("everything")
    secrets = _decoded_secrets(rendered)
    assert secrets[f"{FULLNAME}-raft"] == {"secret": SECRET_SENTINELS["raft"]}
    assert secrets[f"{FULLNAME}-s3"] == {
        "access-key-id": SECRET_SENTINELS["s3_key_id"],
        "secret-access-key": SECRET_SENTINELS["s3_secret"],
    }
    assert SECRET_SENTINELS["db_password"] in secrets[f"{FULLNAME}-database"]["url"]
    for manifest in rendered.manifests:
        if manifest.kind == "Secret":
            continue
        text = yaml.safe_dump(manifest.doc)
        for sentinel in SECRET_SENTINELS.values():
            assert sentinel not in text, f"{sentinel} leaked into {manifest.kind} {manifest.name}"
            assert base64.b64encode(sentinel.encode()).decode() not in text
    assert not any(s in rendered.notes for s in SECRET_SENTINELS.values())


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_secret_settings_come_only_from_secret_key_refs(name):
    rendered = scenario(name)
    for container in rendered.containers():
        for entry in container.get("env", []):
            if entry["name"] in SECRET_ENV:
                assert "value" not in entry, entry["name"]
                assert set(entry["valueFrom"]) == {"secretKeyRef"}
    for config_map in rendered.of_kind("ConfigMap"):
        assert not revenge_names(json.dumps(config_map)) & SECRET_ENV
        for sentinel in SECRET_SENTINELS.values():
            assert sentinel not in json.dumps(config_map)


def test_existing_secrets_are_referenced_and_not_created():
    rendered = scenario("raft-3-nfs-existing-secrets")
    assert rendered.of_kind("Secret") == []
    refs = {n: e["valueFrom"]["secretKeyRef"] for n, e in rendered.env().items()
            if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs == {
        "REVENGE_DATABASE_URL": {"name": "pg-url", "key": "url"},
        "REVENGE_STORAGE_S3_ACCESS_KEY_ID": {"name": "minio-keys", "key": "access-key-id"},
        "REVENGE_STORAGE_S3_SECRET_ACCESS_KEY": {"name": "minio-keys", "key": "secret-access-key"},
        "REVENGE_RAFT_SECRET": {"name": "raft-shared", "key": "secret"},
    }
    single = scenario("s3-existing-secret")
    assert single.of_kind("Secret") == []
    assert single.env()["REVENGE_STORAGE_S3_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "keys"


def test_inline_keys_and_urls_get_chart_secrets():
    s3 = _decoded_secrets(scenario("s3-inline"))
    assert s3 == {f"{FULLNAME}-s3": {"access-key-id": "AKIAEXAMPLE", "secret-access-key": "example-secret"}}
    db = scenario("database-url")
    assert _decoded_secrets(db) == {f"{FULLNAME}-database": {"url": "postgresql://u:pw@db/revenge"}}
    assert db.env()["REVENGE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{FULLNAME}-database", "key": "url"}


def test_a_missing_raft_secret_is_generated():
    first = _decoded_secrets(scenario("raft-3"))[f"{FULLNAME}-raft"]["secret"]
    assert re.fullmatch(r"[A-Za-z0-9]{48}", first)
    # Offline (helm template) there is nothing to look up: every render makes
    # a new one, which is why helm.md tells GitOps users to set it.
    again = parse_secret(render_files(RAFT3), f"{FULLNAME}-raft")
    assert again != first
    assert scenario("raft-3").env()["REVENGE_RAFT_SECRET"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{FULLNAME}-raft", "key": "secret"}


def parse_secret(files: dict[str, str], name: str) -> str:
    for doc in yaml.safe_load_all(files["revenge/templates/secrets.yaml"]):
        if doc and doc["metadata"]["name"] == name:
            return base64.b64decode(doc["data"]["secret"]).decode()
    raise AssertionError(f"no Secret {name}")


# --- probes, shutdown, security ----------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_probes_and_graceful_shutdown(name):
    rendered = scenario(name)
    container = rendered.container
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    grace = seconds(rendered.env_value("REVENGE_SERVER_SHUTDOWN_GRACE"))
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    sleep = int(pre_stop[1])
    assert sleep > 0
    termination = rendered.pod_spec["terminationGracePeriodSeconds"]
    # The kubelet's countdown includes the preStop hook; then the server
    # drains for up to `grace` and still needs time to stop its services.
    assert termination > sleep + grace
    listen = rendered.env_value("REVENGE_SERVER_LISTEN")
    http_port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert listen == f"tcp:{http_port}"


def test_shutdown_grace_drives_the_termination_grace_period():
    rendered = render({"server": {"shutdownGrace": 90, "preStopSeconds": 10}})
    assert rendered.env_value("REVENGE_SERVER_SHUTDOWN_GRACE") == "90s"
    assert rendered.container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "10"]
    assert rendered.pod_spec["terminationGracePeriodSeconds"] == 10 + 90 + 10


@pytest.mark.parametrize("grace", [0, 1, 25])
def test_the_linger_stays_inside_the_shutdown_grace(grace, tmp_path):
    """
    The chart leaves server.shutdown_linger to the server: its default (2 s)
    is part of the grace and follows a shorter one down, so any shutdownGrace
    the schema allows loads, and the kubelet's countdown needs nothing more.
    """
    rendered = render({"server": {"shutdownGrace": grace}})
    assert "REVENGE_SERVER_SHUTDOWN_LINGER" not in rendered.env()
    environ = {"REVENGE_SERVER_SHUTDOWN_GRACE": rendered.env_value("REVENGE_SERVER_SHUTDOWN_GRACE")}
    server = load_config(None, environ, cwd=str(tmp_path)).server
    assert server.shutdown_grace == grace
    assert 0 <= server.shutdown_linger <= server.shutdown_grace
    pre_stop = int(rendered.container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert rendered.pod_spec["terminationGracePeriodSeconds"] > pre_stop + server.shutdown_grace


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_non_root_read_only_no_capabilities(name):
    rendered = scenario(name)
    pod = rendered.pod_spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] != 0
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert rendered.pod_spec["automountServiceAccountToken"] is False
    for container in rendered.containers():
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["privileged"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        # The only writable places: /tmp and the data directory.
        writable = {path for path, m in mounts.items() if not m.get("readOnly")}
        assert writable == {"/tmp", "/data"}
        argv = container["command"] + container.get("args", [])
        # twistd would write twistd.pid into the read-only working directory.
        assert argv[argv.index("twistd"):argv.index("twistd") + 4] == ["twistd", "--nodaemon", "--pidfile=", "revenge"]
    volumes = {v["name"]: v for v in rendered.pod_spec["volumes"]}
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {}}


# --- PodDisruptionBudget, NetworkPolicy, monitoring ----------------------------


def test_pod_disruption_budget_selects_the_pods():
    rendered = scenario("raft-3")
    pdb = rendered.one("PodDisruptionBudget", FULLNAME)["spec"]
    assert pdb["maxUnavailable"] == 1
    assert "minAvailable" not in pdb
    pod_labels = rendered.workload["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    other = render(merge(RAFT3, {"podDisruptionBudget": {"minAvailable": 2}}))
    assert other.one("PodDisruptionBudget")["spec"] == {"minAvailable": 2, "selector": pdb["selector"]}
    assert render({"podDisruptionBudget": {"enabled": False}}).of_kind("PodDisruptionBudget") == []


def test_network_policy_admits_only_the_release_to_the_raft_port():
    rendered = scenario("everything")
    policy = rendered.one("NetworkPolicy", FULLNAME)["spec"]
    assert policy["podSelector"] == {"matchLabels": SELECTOR}
    assert policy["policyTypes"] == ["Ingress"]
    rules = {tuple(p["port"] for p in rule["ports"]): rule for rule in policy["ingress"]}
    assert set(rules) == {("http", "metrics"), ("raft",)}
    assert rules[("raft",)]["from"] == [{"podSelector": {"matchLabels": SELECTOR}}]
    assert rules[("http", "metrics")]["from"] == EVERYTHING["networkPolicy"]["httpFrom"]
    # The named ports exist on the pod.
    ports = {p["name"] for p in rendered.container["ports"]}
    assert {"http", "metrics", "raft"} <= ports
    # Without httpFrom the HTTP port is open to all; without raft there is no raft rule.
    single = render({"networkPolicy": {"enabled": True}}).one("NetworkPolicy")["spec"]
    assert single["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
    assert scenario("raft-3").of_kind("NetworkPolicy") == []


def _metric_series_names() -> set[str]:
    """Every series name the server exposes, from its own registry."""
    names = set()
    for family in Metrics().registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
        names |= {family.name + s for s in suffixes[family.type]}
    return names


SERIES = _metric_series_names()


def _assert_real_metrics(expr: str) -> set[str]:
    used = set(re.findall(r"\brevenge_[a-z_]+", expr))
    assert used, f"no revenge_ metric in {expr!r}"
    assert used <= SERIES, f"unknown metrics {used - SERIES} in {expr!r}"
    return used


def test_service_monitor_scrapes_the_main_service_only():
    rendered = scenario("everything")
    monitor = rendered.one("ServiceMonitor", FULLNAME)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    spec = monitor["spec"]
    selector = spec["selector"]["matchLabels"]
    services = {s["metadata"]["name"]: s for s in rendered.of_kind("Service")}
    assert selector.items() <= services[FULLNAME]["metadata"]["labels"].items()
    assert not selector.items() <= services[HEADLESS]["metadata"]["labels"].items()
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = spec["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] in {p["name"] for p in services[FULLNAME]["spec"]["ports"]}
    assert endpoint["port"] == "metrics"  # server.metricsPort is set
    assert re.fullmatch(r"\d+[smh]", endpoint["interval"])
    plain = render({"serviceMonitor": {"enabled": True}}).one("ServiceMonitor")["spec"]["endpoints"]
    assert plain[0]["port"] == "http"


def test_prometheus_rules_alert_on_leadership_and_stale_jobs():
    rule = scenario("everything").one("PrometheusRule", FULLNAME)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    groups = rule["spec"]["groups"]
    assert all(g["name"] and g["rules"] for g in groups)
    alerts = {r["alert"]: r for g in groups for r in g["rules"]}
    assert set(alerts) == {"RevengeNoLeader", "RevengeMultipleLeaders", "RevengeJobNotSucceeding"}
    for alert in alerts.values():
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(alert)
        assert re.fullmatch(r"\d+[smh]", alert["for"])
        assert alert["labels"]["severity"] in {"critical", "warning"}
        assert alert["annotations"]["summary"]
        _assert_real_metrics(alert["expr"])
        assert f'namespace="{NAMESPACE}"' in alert["expr"]
        assert f'service="{FULLNAME}"' in alert["expr"]

    no_leader = alerts["RevengeNoLeader"]
    assert re.fullmatch(
        r"\(max\(revenge_election_is_leader\{[^}]*\}\) == 0\)"
        r" or absent\(revenge_election_is_leader\{[^}]*\}\)",
        no_leader["expr"],
    )
    assert no_leader["for"] == "2m"
    assert re.fullmatch(r"sum\(revenge_election_is_leader\{[^}]*\}\) > 1", alerts["RevengeMultipleLeaders"]["expr"])
    stale = alerts["RevengeJobNotSucceeding"]["expr"]
    assert stale.startswith("(time() - ")
    assert "revenge_job_last_success_timestamp_seconds" in stale
    assert "exported_job" in stale
    assert "> 1800)" in stale and "[1800s:1m]" in stale  # two intervals of 900 s
    # Prometheus' own templates survive Helm's.
    assert "{{ $value }}" in alerts["RevengeMultipleLeaders"]["annotations"]["description"]
    assert "{{ $labels.exported_job }}" in alerts["RevengeJobNotSucceeding"]["annotations"]["description"]

    custom = render({"prometheusRule": {"enabled": True, "selector": 'job="revenge"', "jobLabel": "job_name"}})
    exprs = [r["expr"] for g in custom.one("PrometheusRule")["spec"]["groups"] for r in g["rules"]]
    assert all('{job="revenge"}' in e for e in exprs)
    assert "max by (job_name)" in exprs[-1]
    assert "> 7200)" in exprs[-1] and "[7200s:1m]" in exprs[-1]  # the default hour, twice


def test_grafana_dashboard_configmap():
    rendered = scenario("everything")
    config_map = rendered.one("ConfigMap", f"{FULLNAME}-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["revenge.json"])
    titles = " | ".join(p["title"] for p in dashboard["panels"]).lower()
    for needed in ("leader", "term", "job runs", "request rate", "latency"):
        assert needed in titles
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set().union(*(_assert_real_metrics(e) for e in exprs))
    assert {"revenge_election_is_leader", "revenge_election_term", "revenge_job_runs_total",
            "revenge_http_requests_total", "revenge_http_request_duration_seconds_bucket"} <= used
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert scenario("defaults").of_kind("ConfigMap") == []


def test_ingress_routes_to_the_service():
    ingress = scenario("everything").one("Ingress", FULLNAME)["spec"]
    assert ingress["ingressClassName"] == "nginx"
    (rule,) = ingress["rules"]
    assert rule["host"] == "media.example.org"
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": FULLNAME, "port": {"name": "http"}}


# --- values: the keys of the issue, the schema, refusals -----------------------

ISSUE_KEYS = """
replicaCount image.repository image.tag image.pullPolicy
media.persistence.enabled media.persistence.storageClass media.persistence.accessMode
media.persistence.size media.persistence.existingClaim media.persistence.nfs.server
media.persistence.nfs.path media.persistence.nfs.readOnly media.moviePaths media.tvPaths
media.musicPaths storage.backend storage.local.path storage.s3.endpoint storage.s3.region
storage.s3.bucket storage.s3.accessKeyId storage.s3.secretAccessKey storage.s3.usePathStyle
storage.s3.existingSecret raft.enabled raft.dataDir raft.secret raft.existingSecret
database.url database.existingSecret resources podDisruptionBudget serviceMonitor
prometheusRule networkPolicy
""".split()


def test_values_have_the_keys_of_the_issue():
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    for dotted in ISSUE_KEYS:
        node: Any = values
        for part in dotted.split("."):
            assert isinstance(node, dict) and part in node, f"values.yaml lacks {dotted}"
            node = node[part]
    assert values["media"]["persistence"]["accessMode"] == "ReadOnlyMany"
    assert values["replicaCount"] == 1 and values["raft"]["enabled"] is False


def test_values_schema_is_draft_07_and_closed():
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert set(schema["properties"]) == set(values)
    for section in ("image", "media", "storage", "raft", "database", "server", "persistence"):
        assert schema["properties"][section]["additionalProperties"] is False


@pytest.mark.parametrize(
    "values, where",
    [
        ({"replicaCount": "3"}, "/replicaCount"),
        ({"replicaCount": 0}, "/replicaCount"),
        ({"raft": {"enabled": "yes"}}, "/raft/enabled"),
        ({"server": {"shutdownGrace": "25s"}}, "/server/shutdownGrace"),
        ({"server": {"idleTimeout": "75s"}}, "/server/idleTimeout"),
        ({"storage": {"avatarMaxBytes": 0}}, "/storage/avatarMaxBytes"),
        ({"media": {"moviePaths": "/media/movies"}}, "/media/moviePaths"),
        ({"media": {"moviePaths": ["/srv/movies"]}}, "/media/moviePaths/0"),
        ({"media": {"persistence": {"accessMode": "ReadWriteOnce"}}}, "/media/persistence/accessMode"),
        ({"storage": {"s3": {"usePathStyle": "true"}}}, "/storage/s3/usePathStyle"),
        ({"storage": {"s3": {"bucket": "b", "bukket": "c"}}}, "bukket"),
        ({"raft": {"dataDir": "/var/lib/raft"}}, "/raft/dataDir"),
        # The server would refuse it at startup; the chart says so at install.
        ({"raft": {"secret": "too-short"}}, "/raft/secret"),
        ({"databse": {"url": "x"}}, "databse"),
    ],
)
def test_schema_rejects_wrong_values(values, where):
    with pytest.raises(helm_python.HelmValuesError) as error:
        render_files(values)
    assert where in str(error.value)


def test_a_database_url_of_the_wrong_type_is_refused_without_printing_secrets():
    with pytest.raises(helm_python.HelmValuesError) as error:
        render_files({"database": {"url": ["postgresql://u:hunter2@db/x"]}})
    assert "/database/url" in str(error.value)
    assert "hunter2" not in str(error.value)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"replicaCount": 3}, "needs raft.enabled"),
        ({"replicaCount": 3, "raft": {"enabled": True}}, "shared database"),
        (merge(RAFT3, {"storage": {"backend": "local"}}), "shared storage"),
        (merge(RAFT3, {"persistence": {"existingClaim": "x"}}), "persistence.existingClaim"),
        ({"storage": {"backend": "s3"}}, "storage.s3.bucket"),
        ({"storage": {"backend": "s3", "s3": {"bucket": "b", "accessKeyId": "only-id"}}}, "together"),
        ({"media": {"persistence": {"nfs": {"server": "nfs"}}}}, "nfs.path"),
    ],
)
def test_combinations_that_cannot_work_fail_the_render(values, message):
    with pytest.raises(helm_python.HelmRenderError) as error:
        render_files(values)
    assert message in str(error.value)


def test_notes_tell_the_mode_and_how_to_reach_it():
    single = scenario("defaults").notes
    assert "single node" in single and f"deployment/{FULLNAME}" in single
    cluster = scenario("raft-3").notes
    assert "Raft cluster of 3" in cluster and f"statefulset/{FULLNAME}" in cluster
    assert "helm template" in cluster  # the generated secret caveat
    assert "helm template" not in scenario("raft-3-nfs-existing-secrets").notes
    even = render(merge(RAFT3, {"replicaCount": 4})).notes
    assert "odd replicaCount" in even


def test_the_packaged_chart_renders_like_the_directory(tmp_path):
    archive = helm_python.package(CHART_DIR, destination=tmp_path)
    with helm_python.Chart.load(archive) as packaged:
        names = {f["name"] for f in packaged.files}
        assert "dashboards/revenge.json" in names  # .Files.Get needs it
        assert not any(n.startswith("examples/") for n in names)
        files = packaged.render(EVERYTHING, name=RELEASE, namespace=NAMESPACE)
    assert sorted(m.kind for m in parse_files(files)) == scenario("everything").kinds()



def test_idle_timeout_and_avatar_size_reach_the_server_only_when_set():
    pod = {"metadata.name": f"{FULLNAME}-0"}
    env = kubelet_environment(render({}).container["env"], pod)
    assert "REVENGE_SERVER_IDLE_TIMEOUT" not in env
    assert "REVENGE_STORAGE_AVATAR_MAX_BYTES" not in env
    rendered = render({"server": {"idleTimeout": 120}, "storage": {"avatarMaxBytes": 10485760}})
    env = kubelet_environment(rendered.container["env"], pod)
    assert env["REVENGE_SERVER_IDLE_TIMEOUT"] == "120s"
    assert env["REVENGE_STORAGE_AVATAR_MAX_BYTES"] == "10485760"
    config = load_config(None, {k: v for k, v in env.items() if not v.startswith("<from")})
    assert config.server.idle_timeout == 120.0
    assert config.storage.avatar_max_bytes == 10485760
