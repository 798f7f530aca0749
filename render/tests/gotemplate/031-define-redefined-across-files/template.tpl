{{ template "x" }}
