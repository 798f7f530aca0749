{{ template "h" . }}
