apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ template "fullname" . }}
  labels:
    {{- range $k, $v := .labels }}
    {{ $k }}: {{ $v | printf "%q" }}
    {{- end }}
spec:
  replicas: {{ .replicas }}
  template:
    spec:
      containers:
        - name: {{ .name }}
          image: "{{ .image.repository }}:{{ .image.tag }}"
          imagePullPolicy: {{ .image.pullPolicy }}
          {{- if .ports }}
          ports:
            {{- range .ports }}
            - name: {{ .name }}
              containerPort: {{ .port }}
            {{- end }}
          {{- end }}
          {{- with .resources }}
          resources:
            {{- range $k, $v := . }}
            {{ $k }}: {{ $v }}
            {{- end }}
          {{- end }}
          {{- if not .disabled }}
          env:
            - name: MODE
              value: {{ if .enabled }}"on"{{ else }}"off"{{ end }}
          {{- end }}
