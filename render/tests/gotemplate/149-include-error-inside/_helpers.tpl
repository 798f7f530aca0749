{{ define "bad" }}
{{ .name.first }}{{ end }}