{{ $n := .name }}x: {{ $n.first }}
