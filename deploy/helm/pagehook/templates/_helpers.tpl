{{/* Names and labels shared by every object of the release. */}}

{{- define "pagehook.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pagehook.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pagehook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pagehook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pagehook.labels" -}}
{{ include "pagehook.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "pagehook.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Refuses values that cannot work, with the reason (the schema says so too). */}}
{{- define "pagehook.check" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.database.url) -}}
{{- fail "replicaCount > 1 needs PostgreSQL (database.url): SQLite serves one process" -}}
{{- end -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.plugins.existingClaim) -}}
{{- fail "replicaCount > 1 needs plugins.existingClaim, a ReadWriteMany claim every replica loads installed plugins from" -}}
{{- end -}}
{{- if and .Values.database.url (not .Values.database.passwordSecret.name) -}}
{{- fail "database.url needs database.passwordSecret.name: the password is never in the URL or the values" -}}
{{- end -}}
{{- end -}}
