{{ template "t" }}
