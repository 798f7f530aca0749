{{- with $x := .nope }}has{{ else }}else sees [{{ $x }}]{{ end }}
{{ range $k := .labels }}{{ $k }} {{ end }}
{{ range $i, $e := .labels }}{{ $i }}={{ $e }} {{ end }}
{{ $m := .nope }}[{{ $m.y }}] {{ template "d" .nope }} {{ template "d" $ }}
{{ print }}|{{ printf "%s" }}|{{ html }}|{{ println }}|
