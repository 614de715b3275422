package io.capstock.sink;

/** The plugin's version as Maven wrote it into the jar manifest. */
final class Version {
  private Version() {}

  static String text() {
    String version = Version.class.getPackage().getImplementationVersion();
    return version == null ? "dev" : version;
  }
}
