{{ $v := "outer" }}{{ range $v := .list }}{{ $v }}{{ end }} {{ $v }}
{{ range $i, $v := .list }}{{ $i }}{{ end }}{{ $v }}
