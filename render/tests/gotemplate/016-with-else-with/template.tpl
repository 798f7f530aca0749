{{- with .image }}repo={{ .repository }} root={{ $.name }}{{ end }}
{{ with .nope }}has{{ else with .labels }}labels {{ .app }}{{ else }}none{{ end }}
{{ with .empty }}has{{ else with .emptyMap }}m{{ else }}neither{{ end }}
{{ with $x := .port }}{{ $x }} {{ . }}{{ end }}
