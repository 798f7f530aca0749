a
{{ template "nope" . }}
