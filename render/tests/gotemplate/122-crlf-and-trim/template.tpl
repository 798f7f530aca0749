a
  {{- .name -}}
  b
{{ .name }}
