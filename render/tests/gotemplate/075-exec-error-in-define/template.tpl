ok
{{ template "h" . }}
