DROP TABLE oauth_client_roles;
