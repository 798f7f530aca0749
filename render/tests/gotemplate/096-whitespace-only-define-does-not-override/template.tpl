{{ template "x" }}|
