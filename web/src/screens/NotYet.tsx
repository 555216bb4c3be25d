/** Screens that are still to come. */
export function NotYet() {
  return (
    <section>
      <h1>Coming soon</h1>
      <p>This screen is not in the portal yet; everything it will show is available through the API.</p>
    </section>
  );
}
