{{ template "count" 3 }}
