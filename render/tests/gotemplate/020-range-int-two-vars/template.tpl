{{ range $i, $v := 3 }}{{ $i }}{{ end }}
