{{- range $i, $n := .nums }}
{{- if eq $n 1.0 }}
one
{{- else if gt $n 2.0 }}
big {{ $n }}
{{- else }}
other {{ $i }}
{{- end }}
{{- end }}
{{ if .enabled }}on{{ end }} {{ if .disabled }}on{{ else }}off{{ end }}
{{ if .empty }}x{{ else if .emptyList }}y{{ else if .emptyMap }}z{{ else if 0 }}w{{ else if 0.0 }}v{{ else }}none{{ end }}
