"""Reference CRM service of the customer-service assistant (customers, orders, returns, points)."""
