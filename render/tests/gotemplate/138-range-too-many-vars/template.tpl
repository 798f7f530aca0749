{{ range $a, $b, $c := .list }}{{ end }}
