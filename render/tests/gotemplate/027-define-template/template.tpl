{{- template "app.labels" . }}
name: {{ template "app.name" . }}
{{ template "app.nodot" }}
{{ template "app.nested" .image }}
