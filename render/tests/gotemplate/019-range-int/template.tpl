{{ range 3 }}{{ . }} {{ end }}
{{ range $i := 4 }}{{ $i }}{{ end }}
{{ range 0 }}x{{ else }}zero{{ end }}
{{ range -2 }}x{{ else }}neg{{ end }}
