{{ $i := 0 }}{{ $v := "" }}{{ range $i, $v = .list }}{{ end }}{{ $i }} {{ $v }}
