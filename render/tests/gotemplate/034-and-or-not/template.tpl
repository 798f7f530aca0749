{{ and 1 0 }} {{ and 1 2 }} {{ or 0 "" }} {{ or 0 "x" }} {{ not .enabled }} {{ not .empty }}
{{ and .enabled .name }} {{ or .nope .name }} {{ and .nope .boom.x }}
{{ if and .enabled (not .disabled) }}yes{{ end }}
{{ or .empty .emptyList }} [{{ and .nothing 1 }}]
{{ .name | and true }} {{ .name | or false }}
