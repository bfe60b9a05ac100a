DROP TABLE api_keys;
DROP TABLE user_roles;
DROP TABLE roles;
