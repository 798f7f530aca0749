{{ .name | printf "%s-x" }} {{ "a" | printf "%s%s" "b" }} {{ .list | len }} {{ 3 | eq 3 }}
{{ .name | printf "%q" | printf "[%s]" }} {{ (printf "%s" .name) | len }}
{{ (index .ports 0).name }} {{ ((index .ports 1)).port }}
