{{- if $x := .nope }}{{ $x }}{{ else }}else [{{ $x }}]{{ end }}
{{ if .disabled -}} A {{- else if .enabled -}} B {{- else -}} C {{- end }}|
{{ $x := 1 }}{{ $x := 2 }}{{ $x }} {{ "}}" }} }} {{"{{"}} {{.name}}{{/**/}}
{{ range $i, $v := .list }}{{ if eq $i 0 }}{{ continue }}{{ else if eq $i 2 }}{{ break }}{{ end }}{{ $v }}{{ else }}none{{ end }}
{{ with .labels }}{{ range $k, $v := . }}{{ $k }}{{ end }}{{ end }}
