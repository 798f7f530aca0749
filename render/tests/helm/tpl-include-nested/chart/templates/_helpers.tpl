{{- define "inc.name" -}}
{{ .Chart.Name }}
{{- end }}
{{- define "inc.labels" -}}
app: {{ include "inc.name" . }}
{{ include "inc.extraLabels" . }}
{{- end }}
{{- define "inc.extraLabels" -}}
{{- range $k, $v := .Values.labels }}
{{ $k }}: {{ $v }}
{{- end }}
release: {{ .Release.Name }}
{{- end }}
{{- define "inc.container" -}}
name: {{ include "inc.name" . }}
env:
  {{- toYaml .Values.env | nindent 2 }}
labels:
  {{- include "inc.labels" . | nindent 2 }}
{{- end }}
{{- define "inc.withTemplateCall" -}}
via-template: {{ template "inc.name" . }}
{{- end }}
{{- define "inc.redefined" }}first{{ end }}
