"""The value sets the chart is rendered with, named for test ids."""

from __future__ import annotations

from typing import Any

from ._chart import CHART_DIR, load_values_file, merge

SHARED_CLUSTER: dict[str, Any] = {
    "database": {"existingSecret": "pg-url"},
    "storage": {
        "backend": "s3",
        "s3": {
            "endpoint": "http://minio.minio.svc:9000",
            "bucket": "revenge",
            "usePathStyle": True,
            "existingSecret": "minio-keys",
        },
    },
}

RAFT3: dict[str, Any] = merge(SHARED_CLUSTER, {"replicaCount": 3, "raft": {"enabled": True}})

NFS_MEDIA: dict[str, Any] = {
    "media": {
        "persistence": {"nfs": {"server": "nfs.example.internal", "path": "/export/media"}},
        "moviePaths": ["/media/movies"],
        "tvPaths": ["/media/tv", "/media/kids-tv"],
        "musicPaths": ["/media/music"],
    }
}

# Sentinels: values that must only ever appear inside Secret objects.
SECRET_SENTINELS = {
    "raft": "raft-secret-SENTINEL-3f9c-7Vq2hZt9wKx3mPb0LrYc",
    "s3_key_id": "s3-key-id-SENTINEL-51ab",
    "s3_secret": "s3-secret-SENTINEL-77de",
    "db_password": "db-password-SENTINEL-0c42",
}

INLINE_SECRETS: dict[str, Any] = {
    "replicaCount": 3,
    "raft": {"enabled": True, "secret": SECRET_SENTINELS["raft"]},
    "database": {"url": f"postgresql://revenge:{SECRET_SENTINELS['db_password']}@pg:5432/revenge"},
    "storage": {
        "backend": "s3",
        "s3": {
            "bucket": "revenge",
            "accessKeyId": SECRET_SENTINELS["s3_key_id"],
            "secretAccessKey": SECRET_SENTINELS["s3_secret"],
        },
    },
}

EVERYTHING: dict[str, Any] = merge(
    INLINE_SECRETS,
    NFS_MEDIA,
    {
        "replicaCount": 5,
        "server": {"metricsPort": 9090, "shutdownGrace": 40, "logFormat": "text"},
        "media": {"persistence": {"enabled": True, "storageClass": "-"}},
        "persistence": {"storageClass": "fast"},
        "jobs": {"cleanup": {"interval": 900, "activityRetention": "30d"}},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
        "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "prom"}},
        "grafanaDashboard": {"enabled": True},
        "networkPolicy": {
            "enabled": True,
            "httpFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}],
        },
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "hosts": [{"host": "media.example.org", "paths": ["/"]}],
            "tls": [{"hosts": ["media.example.org"], "secretName": "media-tls"}],
        },
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"}},
        "extraEnv": [{"name": "TZ", "value": "Europe/Paris"}],
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "media", "operator": "Exists", "effect": "NoSchedule"}],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "revenge"}},
            }
        ],
        "image": {"pullSecrets": [{"name": "registry"}]},
        "priorityClassName": "media",
        "podAnnotations": {"example.org/team": "media"},
    },
)


def _file(*parts: str) -> dict[str, Any]:
    return load_values_file(CHART_DIR.joinpath(*parts))


SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "no-persistence": {"persistence": {"enabled": False}},
    "single-existing-data-claim": {"persistence": {"existingClaim": "revenge-data"}},
    "nfs": NFS_MEDIA,
    "existing-claim": {
        "media": {"persistence": {"existingClaim": "media-ro"}, "moviePaths": ["/media/movies"]}
    },
    "pv-template": merge(
        NFS_MEDIA, {"media": {"persistence": {"enabled": True, "storageClass": "-", "size": "2Ti"}}}
    ),
    "dynamic-media-claim": {
        "media": {"persistence": {"enabled": True, "storageClass": "cephfs"}, "moviePaths": ["/media"]}
    },
    "s3-inline": {
        "storage": {
            "backend": "s3",
            "s3": {"bucket": "b", "accessKeyId": "AKIAEXAMPLE", "secretAccessKey": "example-secret"},
        }
    },
    "s3-existing-secret": {"storage": {"backend": "s3", "s3": {"bucket": "b", "existingSecret": "keys"}}},
    "s3-credential-chain": {"storage": {"backend": "s3", "s3": {"bucket": "b", "region": "eu-west-3"}}},
    "database-url": {"database": {"url": "postgresql://u:pw@db/revenge"}},
    "raft-1": merge(SHARED_CLUSTER, {"raft": {"enabled": True}}),
    "raft-3": RAFT3,
    "raft-3-nfs-existing-secrets": merge(
        RAFT3, NFS_MEDIA, {"raft": {"existingSecret": "raft-shared"}}
    ),
    "raft-3-no-persistence": merge(RAFT3, {"persistence": {"enabled": False}}),
    "inline-secrets": INLINE_SECRETS,
    "everything": EVERYTHING,
    "values-cluster.yaml": _file("values-cluster.yaml"),
    "examples/kubernetes-nfs.yaml": merge(
        _file("values-cluster.yaml"), _file("examples", "kubernetes-nfs.yaml")
    ),
    "examples/k3s+minio.yaml": merge(
        _file("examples", "k3s.yaml"), _file("examples", "minio.yaml")
    ),
}
