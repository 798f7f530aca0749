{{ range $a, $b := .list }}{{ $a }}{{ $b }}{{ end }} {{ range $a, $b := .labels }}{{ $a }}{{ $b }}{{ end }}
