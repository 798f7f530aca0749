{{ $x := 1 }}{{ template "t" }}
