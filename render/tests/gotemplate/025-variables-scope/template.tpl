{{- $x := "outer" }}
{{- if true }}{{ $x = "assigned" }}{{ $y := "inner" }}{{ $y }}{{ end }}
{{ $x }}
{{- range $i, $v := .list }}{{ $x = $v }}{{ end }}
{{ $x }}
{{ with .image }}{{ $x := .tag }}{{ $x }}{{ end }} {{ $x }}
{{ $ }}
