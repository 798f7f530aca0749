{{- define "app.name" -}}
{{ .name }}-{{ .image.tag }}
{{- end -}}
{{- define "app.labels" }}
labels:
{{- range $k, $v := .labels }}
  {{ $k }}: {{ $v }}
{{- end }}
{{- end }}
{{ define "app.nodot" }}dot={{ . }}{{ end }}
{{ define "app.nested" }}repo={{ .repository }} {{ template "app.inner" .pullPolicy }}{{ end }}
{{ define "app.inner" }}[{{ . }}]{{ end }}
