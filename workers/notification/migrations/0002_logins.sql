-- Which customer a login belongs to (identity.user_created), so a lockout reaches the customer too.
CREATE TABLE login (
    user_id      uuid PRIMARY KEY,
    customer_id  uuid NOT NULL
);
