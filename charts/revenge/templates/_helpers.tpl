{{/*
Names. Kubernetes names are at most 63 characters; the suffixes the chart adds
(-raft, -media, -s3, -database) fit within the margin kept here.
*/}}
{{- define "revenge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 50 | trimSuffix "-" }}
{{- end }}

{{- define "revenge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "revenge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "revenge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "revenge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "revenge.labels" -}}
helm.sh/chart: {{ include "revenge.chart" . }}
{{ include "revenge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: revenge
{{- end }}

{{- define "revenge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "revenge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The headless Service that gives each StatefulSet pod its DNS name. */}}
{{- define "revenge.peersServiceName" -}}
{{- printf "%s-raft" (include "revenge.fullname" .) }}
{{- end }}

{{- define "revenge.raftSecretName" -}}
{{- default (printf "%s-raft" (include "revenge.fullname" .)) .Values.raft.existingSecret }}
{{- end }}

{{- define "revenge.s3SecretName" -}}
{{- default (printf "%s-s3" (include "revenge.fullname" .)) .Values.storage.s3.existingSecret }}
{{- end }}

{{- define "revenge.databaseSecretName" -}}
{{- default (printf "%s-database" (include "revenge.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{- define "revenge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* "true" when S3 keys reach the pod from a Secret (inline or existing). */}}
{{- define "revenge.s3HasKeys" -}}
{{- $s3 := .Values.storage.s3 }}
{{- if and (eq .Values.storage.backend "s3") (or $s3.existingSecret (and $s3.accessKeyId $s3.secretAccessKey)) }}true{{ end }}
{{- end }}

{{- define "revenge.hasDatabase" -}}
{{- if or .Values.database.url .Values.database.existingSecret }}true{{ end }}
{{- end }}

{{/*
Where the media volume comes from: "claim" (existing or chart-made claim),
"nfs" (an NFS volume in the pod spec) or "" (no media volume).
*/}}
{{- define "revenge.mediaSource" -}}
{{- $p := .Values.media.persistence }}
{{- if or $p.existingClaim $p.enabled }}claim{{ else if $p.nfs.server }}nfs{{ end }}
{{- end }}

{{- define "revenge.mediaClaimName" -}}
{{- default (printf "%s-media" (include "revenge.fullname" .)) .Values.media.persistence.existingClaim }}
{{- end }}

{{/* The cluster-wide name of the media PersistentVolume. */}}
{{- define "revenge.mediaVolumeName" -}}
{{- printf "%s-%s-media" .Release.Namespace (include "revenge.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The storageClassName field for a claim: omitted, "" for "-", or the class. */}}
{{- define "revenge.storageClass" -}}
{{- if eq . "-" }}
storageClassName: ""
{{- else if . }}
storageClassName: {{ . | quote }}
{{- end }}
{{- end }}

{{/* Every Raft member's advertise address: <pod>.<headless>.<ns>.svc.<domain>:<port>. */}}
{{- define "revenge.raftMembers" -}}
{{- $fullname := include "revenge.fullname" . }}
{{- $service := include "revenge.peersServiceName" . }}
{{- $members := list }}
{{- range $i := until (int .Values.replicaCount) }}
{{- $members = append $members (printf "%s-%d.%s.%s.svc.%s:%d" $fullname $i $service $.Release.Namespace $.Values.clusterDomain (int $.Values.raft.port)) }}
{{- end }}
{{- join "," $members }}
{{- end }}

{{/*
Combinations the server would accept but that cannot work on Kubernetes fail
the render with a message that names the values to change.
*/}}
{{- define "revenge.validate" -}}
{{- $replicas := int .Values.replicaCount }}
{{- if and (gt $replicas 1) (not .Values.raft.enabled) }}
{{- fail "replicaCount > 1 needs raft.enabled=true: without an election every replica would call itself leader" }}
{{- end }}
{{- if and (gt $replicas 1) (not (include "revenge.hasDatabase" .)) }}
{{- fail "replicaCount > 1 needs a shared database: set database.url or database.existingSecret (PostgreSQL)" }}
{{- end }}
{{- if and (gt $replicas 1) (eq .Values.storage.backend "local") }}
{{- fail "replicaCount > 1 needs shared storage: storage.backend=local keeps each pod's files to itself; use s3" }}
{{- end }}
{{- if and .Values.raft.enabled .Values.persistence.existingClaim }}
{{- fail "persistence.existingClaim is for a single node; with raft.enabled each pod gets its own claim" }}
{{- end }}
{{- if and (eq .Values.storage.backend "s3") (not .Values.storage.s3.bucket) }}
{{- fail "storage.backend=s3 needs storage.s3.bucket" }}
{{- end }}
{{- $s3 := .Values.storage.s3 }}
{{- if and (not $s3.existingSecret) (ne (empty $s3.accessKeyId) (empty $s3.secretAccessKey)) }}
{{- fail "set storage.s3.accessKeyId and storage.s3.secretAccessKey together (or storage.s3.existingSecret)" }}
{{- end }}
{{- $nfs := .Values.media.persistence.nfs }}
{{- if and $nfs.server (not $nfs.path) }}
{{- fail "media.persistence.nfs.server needs media.persistence.nfs.path" }}
{{- end }}
{{- end }}

{{/*
The server's environment. Only real configuration keys (docs/configuration.md)
are set, and none of them empty: an empty REVENGE_* variable counts as set.
*/}}
{{- define "revenge.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: REVENGE_NODE_ID
  value: "$(POD_NAME)"
- name: REVENGE_SERVER_LISTEN
  value: {{ printf "tcp:%d" (int .Values.server.port) | quote }}
{{- if .Values.server.metricsPort }}
- name: REVENGE_SERVER_METRICS_LISTEN
  value: {{ printf "tcp:%d" (int .Values.server.metricsPort) | quote }}
{{- end }}
- name: REVENGE_SERVER_SHUTDOWN_GRACE
  value: {{ printf "%ds" (int .Values.server.shutdownGrace) | quote }}
{{- if not (kindIs "invalid" .Values.server.idleTimeout) }}
- name: REVENGE_SERVER_IDLE_TIMEOUT
  value: {{ printf "%ds" (int .Values.server.idleTimeout) | quote }}
{{- end }}
- name: REVENGE_DATA_DIR
  value: /data
{{- if include "revenge.hasDatabase" . }}
- name: REVENGE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "revenge.databaseSecretName" . }}
      key: url
{{- end }}
- name: REVENGE_STORAGE_BACKEND
  value: {{ .Values.storage.backend | quote }}
{{- if not (kindIs "invalid" .Values.storage.avatarMaxBytes) }}
- name: REVENGE_STORAGE_AVATAR_MAX_BYTES
  value: {{ int64 .Values.storage.avatarMaxBytes | toString | quote }}
{{- end }}
{{- if and (eq .Values.storage.backend "local") .Values.storage.local.path }}
- name: REVENGE_STORAGE_LOCAL_PATH
  value: {{ .Values.storage.local.path | quote }}
{{- end }}
{{- if eq .Values.storage.backend "s3" }}
{{- $s3 := .Values.storage.s3 }}
{{- if $s3.endpoint }}
- name: REVENGE_STORAGE_S3_ENDPOINT
  value: {{ $s3.endpoint | quote }}
{{- end }}
- name: REVENGE_STORAGE_S3_REGION
  value: {{ $s3.region | quote }}
- name: REVENGE_STORAGE_S3_BUCKET
  value: {{ $s3.bucket | quote }}
- name: REVENGE_STORAGE_S3_USE_PATH_STYLE
  value: {{ ternary "true" "false" $s3.usePathStyle | quote }}
{{- if include "revenge.s3HasKeys" . }}
- name: REVENGE_STORAGE_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "revenge.s3SecretName" . }}
      key: access-key-id
- name: REVENGE_STORAGE_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "revenge.s3SecretName" . }}
      key: secret-access-key
{{- end }}
{{- end }}
{{- with .Values.media.moviePaths }}
- name: REVENGE_MEDIA_MOVIE_PATHS
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.media.tvPaths }}
- name: REVENGE_MEDIA_TV_PATHS
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.media.musicPaths }}
- name: REVENGE_MEDIA_MUSIC_PATHS
  value: {{ join "," . | quote }}
{{- end }}
- name: REVENGE_JOBS_CLEANUP_INTERVAL
  value: {{ printf "%ds" (int .Values.jobs.cleanup.interval) | quote }}
{{- with .Values.jobs.cleanup.activityRetention }}
- name: REVENGE_JOBS_CLEANUP_ACTIVITY_RETENTION
  value: {{ . | quote }}
{{- end }}
{{- if .Values.raft.enabled }}
- name: REVENGE_ELECTION_BACKEND
  value: raft
- name: REVENGE_RAFT_BIND_ADDR
  value: {{ printf "0.0.0.0:%d" (int .Values.raft.port) | quote }}
- name: REVENGE_RAFT_ADVERTISE_ADDR
  value: {{ printf "$(POD_NAME).%s.%s.svc.%s:%d" (include "revenge.peersServiceName" .) .Release.Namespace .Values.clusterDomain (int .Values.raft.port) | quote }}
- name: REVENGE_RAFT_DATA_DIR
  value: {{ .Values.raft.dataDir | quote }}
- name: REVENGE_RAFT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "revenge.raftSecretName" . }}
      key: secret
# Every member, this pod included; the container's command sets
# REVENGE_RAFT_PEERS to the others.
- name: RAFT_MEMBERS
  value: {{ include "revenge.raftMembers" . | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Raft peers are "the other nodes", so they differ per pod while a StatefulSet
has one pod template. The command drops this pod's own address from
RAFT_MEMBERS, exports the rest as REVENGE_RAFT_PEERS and execs the server.
*/}}
{{- define "revenge.raftPeersScript" -}}
peers=""
found=""
IFS=","
for member in $RAFT_MEMBERS; do
  if [ "$member" = "$REVENGE_RAFT_ADVERTISE_ADDR" ]; then
    found=yes
  else
    peers="${peers:+$peers,}$member"
  fi
done
unset IFS
if [ -z "$found" ]; then
  echo "revenge: this pod's address $REVENGE_RAFT_ADVERTISE_ADDR is not in RAFT_MEMBERS ($RAFT_MEMBERS)" >&2
  exit 1
fi
if [ -n "$peers" ]; then
  export REVENGE_RAFT_PEERS="$peers"
fi
exec "$@"
{{- end }}

{{- define "revenge.serverArgs" -}}
- twistd
- --nodaemon
# No twistd.pid: the root filesystem is read-only.
- --pidfile=
- revenge
- --log-format
- {{ .Values.server.logFormat }}
{{- with .Values.server.extraArgs }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The pod template shared by the Deployment and the StatefulSet. */}}
{{- define "revenge.podTemplate" -}}
metadata:
  labels:
    {{- include "revenge.selectorLabels" . | nindent 4 }}
    app.kubernetes.io/component: server
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "revenge.serviceAccountName" . }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ add .Values.server.preStopSeconds .Values.server.shutdownGrace .Values.server.terminationMarginSeconds }}
  {{- with .Values.image.pullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: revenge
      image: {{ include "revenge.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      {{- if .Values.raft.enabled }}
      command:
        - /bin/sh
        - -ec
        - |
          {{- include "revenge.raftPeersScript" . | nindent 10 }}
        - raft-peers
      args:
        {{- include "revenge.serverArgs" . | nindent 8 }}
      {{- else }}
      command:
        {{- include "revenge.serverArgs" . | nindent 8 }}
      {{- end }}
      env:
        {{- include "revenge.env" . | nindent 8 }}
      ports:
        - name: http
          containerPort: {{ .Values.server.port }}
          protocol: TCP
        {{- if .Values.server.metricsPort }}
        - name: metrics
          containerPort: {{ .Values.server.metricsPort }}
          protocol: TCP
        {{- end }}
        {{- if .Values.raft.enabled }}
        - name: raft
          containerPort: {{ .Values.raft.port }}
          protocol: TCP
        {{- end }}
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        {{- toYaml .Values.startupProbe | nindent 8 }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      lifecycle:
        preStop:
          exec:
            command: ["sleep", "{{ .Values.server.preStopSeconds }}"]
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: data
          mountPath: /data
        {{- if include "revenge.mediaSource" . }}
        - name: media
          mountPath: /media
          readOnly: true
        {{- end }}
  volumes:
    - name: tmp
      emptyDir: {}
    {{- if not (and .Values.raft.enabled .Values.persistence.enabled) }}
    - name: data
      {{- if and .Values.persistence.enabled }}
      persistentVolumeClaim:
        claimName: {{ default (printf "%s-data" (include "revenge.fullname" .)) .Values.persistence.existingClaim }}
      {{- else }}
      emptyDir: {}
      {{- end }}
    {{- end }}
    {{- $media := include "revenge.mediaSource" . }}
    {{- if eq $media "claim" }}
    - name: media
      persistentVolumeClaim:
        claimName: {{ include "revenge.mediaClaimName" . }}
        readOnly: true
    {{- else if eq $media "nfs" }}
    - name: media
      nfs:
        server: {{ .Values.media.persistence.nfs.server | quote }}
        path: {{ .Values.media.persistence.nfs.path | quote }}
        readOnly: {{ .Values.media.persistence.nfs.readOnly }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .Values.affinity }}
  affinity:
    {{- toYaml .Values.affinity | nindent 4 }}
  {{- else if gt (int .Values.replicaCount) 1 }}
  affinity:
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "revenge.selectorLabels" . | nindent 16 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
