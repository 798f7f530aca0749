host={{ .Values.db.host }}
port={{ .Values.db.port }}
release={{ .Release.Name }}
