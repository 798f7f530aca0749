{{ template foo }}
